"""The same features on SQLite (the embedded mode of `make up`): upload and dedup, documents with
filters, group items, labelling by API."""

from __future__ import annotations

import asyncio

import httpx

from tests.dam.helpers import md5, png


async def test_dam_on_sqlite(dam_sqlite: httpx.AsyncClient) -> None:
    dam = dam_sqlite
    data = [png(6, 6, seed=i) for i in range(6)]
    results = await asyncio.gather(*[dam.post("/files", content=data[0]) for _ in range(3)])
    assert sorted(r.status_code for r in results) == [200, 200, 201]
    for d in data[1:]:
        assert (await dam.post("/files", content=d)).status_code == 201
    rows = [{"md5": md5(d), "annotation": ["a", "b"][i % 2] if i < 5 else None, "site": "x"} for i, d in enumerate(data)]
    doc = (await dam.post("/documents", params={"name": "lite"}, json=rows)).json()
    assert doc["row_count"] == 6
    page = (await dam.get(f"/documents/{doc['id']}/rows", params={"has_annotation": "false"})).json()
    assert [x["md5"] for x in page["items"]] == [md5(data[5])]
    page = (await dam.get(f"/documents/{doc['id']}/rows", params={"has_annotation": "true", "column": "site=x"})).json()
    assert page["total"] == 5
    r = await dam.post("/datasets", json={"name": "lite", "documents": [{"id": doc["id"]}],
                                          "filter": {"has_annotation": True}, "split": {"train": 0.6, "test": 0.4}})
    assert r.status_code == 201, r.text
    assert sum(d["item_count"] for d in r.json()["datasets"]) == 5
    t = (await dam.post("/labelling-tasks", json={"document_id": doc["id"], "labels": ["a", "b"],
                                                  "filter": {"has_annotation": False}})).json()
    r = await dam.post(f"/labelling-tasks/{t['id']}/annotations",
                       json={"annotations": [{"md5": md5(data[5]), "annotation": "b"}]})
    assert r.json()["status"] == "completed"
    stats = (await dam.get(f"/documents/{doc['id']}/stats")).json()
    assert stats["by_class"] == {"a": 3, "b": 3} and stats["annotated"] == 6
