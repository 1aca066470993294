"""Group items: stratified, seeded split into immutable train/test versions with manifests in the
store, `dataset.grouped` per dataset, and the leakage check."""

from __future__ import annotations

import json
from collections import Counter

import httpx

from tests.dam.helpers import png
from tests.support.outbox import outbox_events


async def make_document(dam: httpx.AsyncClient, name: str, n: int, labels: list[str], seed: int = 0) -> tuple[str, list[str]]:
    rows, md5s = [], []
    for i in range(n):
        r = await dam.post("/files", content=png(4, 4, seed=seed * 1000 + i) + bytes([i % 256, seed % 256]))
        md5s.append(r.json()["md5"])
        rows.append({"md5": md5s[-1], "annotation": labels[i % len(labels)], "site": f"s{i % 2}"})
    r = await dam.post("/documents", params={"name": name}, json=rows)
    assert r.status_code == 201, r.text
    return r.json()["id"], md5s


async def test_group_items_stratified_split_manifest_and_event(dam: httpx.AsyncClient, dam_db: str) -> None:
    doc, md5s = await make_document(dam, "shapes", 40, ["circle", "circle", "circle", "square"])
    req = {"name": "shapes-ds", "documents": [{"id": doc}], "split": {"train": 0.8, "test": 0.2}, "seed": 7}
    r = await dam.post("/datasets", json=req)
    assert r.status_code == 201, r.text
    body = r.json()
    by = {d["purpose"]: d for d in body["datasets"]}
    assert by["train"]["item_count"] == 32 and by["test"]["item_count"] == 8
    assert body["split_overlap"]["shared_count"] == 0 and body["leakage"]["count"] == 0
    manifests = {}
    for purpose, d in by.items():
        m = await dam.get(f"/datasets/{d['id']}/manifest")
        lines = [json.loads(x) for x in m.text.splitlines()]
        manifests[purpose] = lines
        assert d["manifest_key"] == f"dam/datasets/{d['id']}/manifest.jsonl"
        assert all(x["key"] == f"dam/files/{x['md5']}" for x in lines)
    assert Counter(x["label"] for x in manifests["train"]) == {"circle": 24, "square": 8}
    assert Counter(x["label"] for x in manifests["test"]) == {"circle": 6, "square": 2}
    assert {x["md5"] for x in manifests["train"] + manifests["test"]} == set(md5s)
    # same seed, same split; a new version number
    again = (await dam.post("/datasets", json=req)).json()
    by2 = {d["purpose"]: d for d in again["datasets"]}
    assert by2["train"]["version"] == 2
    m2 = [json.loads(x)["md5"] for x in (await dam.get(f"/datasets/{by2['test']['id']}/manifest")).text.splitlines()]
    assert m2 == [x["md5"] for x in manifests["test"]]
    events = await outbox_events(dam_db, "dataset.grouped")
    assert len(events) == 4 and {e["data"]["purpose"] for e in events} == {"train", "test"}
    assert {e["data"]["group_id"] for e in events[:2]} == {body["group_id"]} and events[0]["data"]["name"] == "shapes-ds"
    assert events[0]["data"]["manifest_key"] == by["train"]["manifest_key"] or \
        events[0]["data"]["manifest_key"] == by["test"]["manifest_key"]
    stats = (await dam.get(f"/datasets/{by['test']['id']}/stats")).json()
    assert stats["by_class"] == {"circle": 6, "square": 2} and stats["by_media_type"] == {"image": 8}


async def test_filters_dedup_and_leakage_between_datasets(dam: httpx.AsyncClient) -> None:
    doc_a, md5s = await make_document(dam, "a", 10, ["x", "y"])
    # document b repeats half of a's files: the same content is selected once
    rows = [{"md5": m, "annotation": "x"} for m in md5s[:5]]
    doc_b = (await dam.post("/documents", params={"name": "b"}, json=rows)).json()["id"]
    r = await dam.post("/datasets", json={"name": "ab", "documents": [{"id": doc_a}, {"id": doc_b}],
                                          "split": {"train": 0.5, "test": 0.5}, "stratify": False})
    assert r.status_code == 201 and r.json()["duplicates_dropped"] == 5
    only_train = await dam.post("/datasets", json={"name": "ab-train-all", "documents": [{"id": doc_a}],
                                                   "split": {"train": 1.0}, "filter": {"columns": {"site": "s0"}}})
    assert only_train.status_code == 201, only_train.text
    train_all = only_train.json()["datasets"][0]
    assert train_all["item_count"] == 5
    test = next(d for d in r.json()["datasets"] if d["purpose"] == "test")
    leak = (await dam.get("/datasets/leakage", params={"train": train_all["id"], "test": test["id"]})).json()
    assert leak["shared_count"] == len(set(leak["shared"])) and leak["shared_count"] > 0
    assert set(leak["shared"]) <= set(md5s[0::2])


async def test_bad_grouping_requests(dam: httpx.AsyncClient) -> None:
    doc, _ = await make_document(dam, "tiny", 2, ["x"])
    cases = [
        {"name": "t", "documents": [{"id": doc}], "split": {"train": 0.7, "test": 0.7}},
        {"name": "t", "documents": [{"id": doc}], "split": {"validation": 1.0}},
        {"name": "t", "documents": [], "split": {"train": 1.0}},
        {"name": "t", "documents": [{"id": doc}], "filter": {"labels": ["none"]}},
        {"name": "t", "documents": [{"id": doc}], "filter": {"columns": {"nope": "1"}}},
        {"name": "t", "documents": [{"id": doc, "version": 5}]},
        {"name": "t", "documents": [{"id": doc}], "split": {"train": 0.9, "test": 0.1}},
        {"name": "t", "documents": [{"id": doc}], "extra": 1},
    ]
    for c in cases:
        r = await dam.post("/datasets", json=c)
        assert r.status_code in (404, 422), (c, r.text)
    assert (await dam.get("/datasets")).json() == []
    assert (await dam.get("/datasets/00000000-0000-0000-0000-000000000000")).status_code == 404
