"""The consumer of `badcase.test_data_requested` on real NATS JetStream and PostgreSQL: items join the
standing badcase test set of their function as a new version (BAM's keyed objects copied into DAM's
content-addressed store), the latest version frozen in the same transaction as that function's test dataset
(once for a batch of requests); unresolvable data is dead-lettered with the reason."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from functools import partial
from typing import Any

import httpx
import nats
import pytest

from dam.config import Settings
from dam.file.media import SNIFF_BYTES
from dam.testset.consumers import on_test_data_requested
from mlife_shared.app import ServiceContext
from mlife_shared.db import Database
from mlife_shared.events import Envelope, new_envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.events.contracts import TestDataItem as DataItem
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import Subscription
from mlife_shared.objectstore import ObjectStore, ScopedStore
from mlife_shared.objectstore.base import iterate
from tests.dam.helpers import md5, png, random_bytes
from tests.support.nats import publish
from tests.support.outbox import outbox_events
from tests.support.waiting import consume_until


@pytest.fixture
async def js(nats_url: str):  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    await js.purge_stream("MLIFE_BAM", subject="badcase.test_data_requested")
    js.durable = f"tdr-{uuid.uuid4().hex[:8]}"
    yield js
    with suppress(Exception):
        await js.delete_consumer("MLIFE_BAM", f"dam-{js.durable}")
    await nc.close()


async def run_until(dam: httpx.AsyncClient, dam_db: str, js, until, raw: Any = None) -> None:  # type: ignore[no-untyped-def]
    app = dam.app  # type: ignore[attr-defined]
    ctx = (ServiceContext(app.state.settings, app.state.raw_store, app.state.store) if raw is None
           else ServiceContext(app.state.settings, raw, ScopedStore(raw, "dam")))
    sub = Subscription(js.durable, "badcase.test_data_requested", partial(on_test_data_requested, ctx=ctx))
    await consume_until("dam", dam_db, js, [sub], until, "the consumer")


async def test_items_join_the_badcase_test_set_and_unresolvable_data_is_dead_lettered(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    raw = dam.app.state.raw_store  # type: ignore[attr-defined]
    bam_image = png(12, 9, seed=42)
    await raw.put(f"bam/data/{md5(bam_image)}", iterate(bam_image))
    own = png(5, 5, seed=43)
    await dam.post("/files", content=own)
    b1, b2 = uuid.uuid4(), uuid.uuid4()
    ok = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=b1, data_refs=[f"key:bam/data/{md5(bam_image)}", f"md5:{md5(bam_image)}"],
                     ground_truth="sad", function="emotion"),
        DataItem(badcase_id=b2, data_refs=[f"md5:{md5(own)}"], ground_truth={"label": "happy"}, function="emotion"),
    ])
    b3 = uuid.uuid4()
    bad = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=b3, data_refs=["url:http://example.invalid/x.png", "key:bam/data/" + "f" * 32],
                     ground_truth="x", function="emotion")])
    await publish(js, ok)
    bad_id = await publish(js, bad)

    async def _done() -> bool:
        docs = (await dam.get("/documents", params={"kind": "badcase test set"})).json()
        letters = (await dam.get("/dead-letters")).json()
        return bool(docs) and any(d["event_id"] == str(bad_id) for d in letters)

    await run_until(dam, dam_db, js, _done)
    doc = (await dam.get("/documents", params={"kind": "badcase test set"})).json()[0]
    assert doc["name"] == "badcase test set: emotion" and doc["current_version"] == 1
    assert doc["function"] == "emotion"
    rows = (await dam.get(f"/documents/{doc['id']}/rows")).json()["items"]
    assert {(r["md5"], r["label"], r["extra"]["badcase_id"]) for r in rows} == {
        (md5(bam_image), "sad", str(b1)), (md5(own), "happy", str(b2))}
    # BAM's object was copied into DAM's content-addressed store
    f = (await dam.get(f"/files/{md5(bam_image)}")).json()
    assert f["key"] == f"dam/files/{md5(bam_image)}" and f["width"] == 12
    assert (await dam.get(f"/files/{md5(bam_image)}/content")).content == bam_image
    letter = next(d for d in (await dam.get("/dead-letters")).json() if d["event_id"] == str(bad_id))
    assert "cannot be resolved" in letter["error"] and str(b3) in letter["error"]
    assert "no object under this key" in letter["error"] and "does not fetch URLs" in letter["error"]
    events = await outbox_events(dam_db, "document.created")
    assert [e["data"]["row_count"] for e in events] == [2]
    grouped = await outbox_events(dam_db, "dataset.grouped")
    assert [(e["data"]["name"], e["data"]["function"], e["data"]["purpose"], e["data"]["is_badcase_test_set"],
             e["data"]["item_count"], e["data"]["modality"], e["data"]["version"]) for e in grouped] == [
        ("badcase test set: emotion", "emotion", "test", True, 2, "file", 1)]
    assert grouped[0]["correlation_id"] == events[0]["correlation_id"]

    # the same badcase again, with a new ground truth: a new version, its row replaced, old version kept
    again = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=b1, data_refs=[f"md5:{md5(bam_image)}"], ground_truth="angry", function="emotion")])
    await publish(js, again)

    async def _v2() -> bool:
        return (await dam.get(f"/documents/{doc['id']}")).json()["current_version"] == 2

    await run_until(dam, dam_db, js, _v2)
    rows = (await dam.get(f"/documents/{doc['id']}/rows")).json()["items"]
    assert sorted(r["label"] for r in rows) == ["angry", "happy"]
    v1 = (await dam.get(f"/documents/{doc['id']}/rows", params={"version": 1})).json()["items"]
    assert sorted(r["label"] for r in v1) == ["happy", "sad"]
    current = (await dam.get("/datasets", params={"function": "emotion", "is_badcase_test_set": True})).json()[0]
    assert current["version"] == 2 and current["item_count"] == 2 and current["function"] == "emotion"
    manifest = [json.loads(x) for x in (await dam.get(f"/datasets/{current['id']}/manifest")).text.splitlines()]
    assert sorted((m["label"], m["media_type"], m["id"] == m["md5"]) for m in manifest) == [
        ("angry", "image", True), ("happy", "image", True)]


async def test_bam_add_to_test_data_reaches_the_badcase_test_set(make_database, dam: httpx.AsyncClient,  # type: ignore[no-untyped-def]
                                                                 dam_db: str, js, nats_url: str, tmp_path) -> None:
    """The real loop: BAM files a badcase with its image, "add to test data", BAM's relay publishes, DAM appends."""
    import json

    from bam.app import SPEC as BAM_SPEC
    from bam.config import Settings as BamSettings
    from mlife_shared.app import create_app
    from mlife_shared.messaging.relay import Relay
    from tests.support.auth import SECRET, as_role

    bam_db = await make_database("bam.migrations")
    settings = BamSettings(environment="test", database_url=bam_db, nats_url=nats_url, identity_secret=SECRET,
                           home=tmp_path / "bam", object_store_path=tmp_path / "objects")
    image = png(16, 12, seed=77)
    app = create_app(BAM_SPEC, settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bam/api/bam",
                                     headers=as_role("tester")) as bam:
            report = {"function": "emotion", "data": [], "prediction": "happy", "ground_truth": "sad",
                      "description": "Driver wears a mask", "model_name": "expr", "model_version": "1.0"}
            r = await bam.post("/badcases/with-data", data={"report": json.dumps(report)},
                               files={"file": ("face.png", image, "image/png")})
            assert r.status_code == 201, r.text
            badcase_id = r.json()["id"]
            r = await bam.post("/badcases/add-to-test-data", json={"ids": [badcase_id]})
            assert r.status_code in (200, 201), r.text
    # one reference per item, with the MD5 BAM holds the data under (BAM stats nothing to send it)
    [sent] = await outbox_events(bam_db, "badcase.test_data_requested")
    assert [(i["data_refs"], i["md5"]) for i in sent["data"]["items"]] == [([f"key:bam/data/{md5(image)}"], md5(image))]
    db = Database(bam_db)
    try:
        assert await Relay(db, js).publish_batch() >= 1
    finally:
        await db.dispose()

    async def _joined() -> bool:
        return bool((await dam.get("/documents", params={"kind": "badcase test set"})).json())

    await run_until(dam, dam_db, js, _joined)
    doc = (await dam.get("/documents", params={"kind": "badcase test set"})).json()[0]
    rows = (await dam.get(f"/documents/{doc['id']}/rows")).json()["items"]
    assert [(r["md5"], r["label"], r["extra"]["badcase_id"], r["extra"]["function"]) for r in rows] == [
        (md5(image), "sad", badcase_id, "emotion")]
    assert (await dam.get(f"/files/{md5(image)}/content")).content == image


def npy(values: list[float]) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray([values], dtype=np.float32))
    return buf.getvalue()


async def test_each_function_has_its_own_badcase_test_set_of_files_tensors_and_rows(
        dam_s3: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    """One event with items of three functions: an image (digits), a served input tensor copied from MSM's key
    (shapes) and tabular rows (wine-quality) → three documents, three test datasets with the right function."""
    dam = dam_s3
    raw = dam.app.state.raw_store  # type: ignore[attr-defined]
    image = png(8, 8, seed=5)
    await raw.put(f"bam/data/{md5(image)}", iterate(image))
    tensor = npy([0.5] * 12)
    feedback_key = f"msm/feedback/{uuid.uuid4()}/input.npy"
    await raw.put(feedback_key, iterate(tensor))
    digit, shape, wine1, wine2 = (uuid.uuid4() for _ in range(4))
    features = {"alcohol": 9.4, "acidity": 7, "colour": "red"}
    event = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=digit, data_refs=[f"key:bam/data/{md5(image)}"], ground_truth="3", function="digits"),
        DataItem(badcase_id=shape, data_refs=[f"key:{feedback_key}"], ground_truth="circle", function="shapes"),
        DataItem(badcase_id=wine1, features=features, ground_truth=5, function="wine-quality"),
        DataItem(badcase_id=wine2, features={**features, "alcohol": 12.5}, ground_truth=7, function="wine-quality"),
    ])
    await publish(js, event)

    async def _three() -> bool:
        return len((await dam.get("/datasets", params={"is_badcase_test_set": True})).json()) == 3

    await run_until(dam, dam_db, js, _three)
    docs = {d["function"]: d for d in (await dam.get("/documents", params={"kind": "badcase test set"})).json()}
    assert {f: (d["name"], d["current_version"], d["row_count"]) for f, d in docs.items()} == {
        "digits": ("badcase test set: digits", 1, 1), "shapes": ("badcase test set: shapes", 1, 1),
        "wine-quality": ("badcase test set: wine-quality", 1, 2)}
    assert docs["wine-quality"]["feature_columns"] == ["alcohol", "acidity", "colour"]
    only = (await dam.get("/documents", params={"function": "shapes"})).json()
    assert [d["name"] for d in only] == ["badcase test set: shapes"]

    # the tensor was copied from MSM's key into DAM's store, as a tensor file
    f = (await dam.get(f"/files/{md5(tensor)}")).json()
    assert (f["media_type"], f["content_type"], f["key"]) == ("tensor", "application/x-npy", f"dam/files/{md5(tensor)}")
    assert (await dam.get(f"/files/{md5(tensor)}/content")).content == tensor

    sets = {d["function"]: d for d in (await dam.get("/datasets", params={"is_badcase_test_set": True})).json()}
    assert {f: (d["name"], d["purpose"], d["modality"], d["item_count"]) for f, d in sets.items()} == {
        "digits": ("badcase test set: digits", "test", "file", 1), "shapes": ("badcase test set: shapes", "test", "file", 1),
        "wine-quality": ("badcase test set: wine-quality", "test", "table", 2)}
    shapes = [json.loads(x) for x in (await dam.get(f"/datasets/{sets['shapes']['id']}/manifest")).text.splitlines()]
    assert [(m["md5"], m["media_type"], m["content_type"], m["label"], m["extra"]["badcase_id"]) for m in shapes] == [
        (md5(tensor), "tensor", "application/x-npy", "circle", str(shape))]
    wine = [json.loads(x) for x in (await dam.get(f"/datasets/{sets['wine-quality']['id']}/manifest")).text.splitlines()]
    assert sorted((m["features"]["alcohol"], m["annotation"], m["label"]) for m in wine) == [(9.4, 5, "5"), (12.5, 7, "7")]
    assert all("md5" not in m and "key" not in m and len(m["id"]) == 32 for m in wine)
    rows = (await dam.get(f"/documents/{docs['wine-quality']['id']}/rows")).json()["items"]
    assert all(r["md5"] is None and r["features"]["colour"] == "red" for r in rows)
    grouped = await outbox_events(dam_db, "dataset.grouped")
    assert sorted((e["data"]["function"], e["data"]["modality"]) for e in grouped) == [
        ("digits", "file"), ("shapes", "file"), ("wine-quality", "table")]

    # a later request for one function: only its document and set get a new version
    await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=uuid.uuid4(), data_refs=[f"md5:{md5(image)}"], ground_truth="8", function="digits")]))

    async def _digits_v2() -> bool:
        return len((await dam.get("/datasets", params={"function": "digits"})).json()) == 2

    await run_until(dam, dam_db, js, _digits_v2)
    # the same image under two badcases is one item of the set (its first row wins)
    digits = (await dam.get("/datasets", params={"function": "digits"})).json()[0]
    assert (digits["version"], digits["item_count"]) == (2, 1)
    assert (await dam.get(f"/documents/{docs['digits']['id']}")).json()["row_count"] == 2
    assert len((await dam.get("/datasets", params={"function": "shapes"})).json()) == 1


async def test_a_badcase_with_nested_features_is_dead_lettered_and_nothing_is_written(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    event = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=uuid.uuid4(), features={"alcohol": 9.4}, ground_truth=5, function="wine-quality"),
        DataItem(badcase_id=uuid.uuid4(), features={"alcohol": {"value": 9.4}}, ground_truth=5, function="wine-quality"),
    ])
    event_id = await publish(js, event)

    async def _dead() -> bool:
        return any(d["event_id"] == str(event_id) for d in (await dam.get("/dead-letters")).json())

    await run_until(dam, dam_db, js, _dead)
    letter = next(d for d in (await dam.get("/dead-letters")).json() if d["event_id"] == str(event_id))
    assert "'alcohol' holds nested JSON" in letter["error"]
    assert (await dam.get("/documents")).json() == [] and (await dam.get("/datasets")).json() == []


async def test_leakage_train_items_in_the_functions_badcase_test_set_are_reported(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    """Group items counts the train items (by MD5, or a table row's hash) that are in the current badcase test set
    of their function, warns, and can leave them out; a badcase test set grouped by hand keeps its function."""
    from tests.dam.helpers import WINE_COLUMNS, to_csv

    images = [png(8, 8, seed=100 + i) for i in range(10)]
    md5s = [(await dam.post("/files", content=im)).json()["md5"] for im in images]
    r = await dam.post("/documents", params={"name": "digits-train"},
                       json=[{"md5": m, "annotation": str(i % 2)} for i, m in enumerate(md5s)])
    train_doc = r.json()["id"]
    wine_doc = (await dam.post("/documents", params={"name": "wine"}, headers={"content-type": "text/csv"},
                               content=to_csv(WINE_COLUMNS, [[11.0, 1.5, 2, "red", 0], [12.0, 1.6, 3, "white", 1]]))).json()
    await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        *[DataItem(badcase_id=uuid.uuid4(), data_refs=[f"md5:{m}"], ground_truth=str(i % 2), function="digits")
          for i, m in enumerate(md5s[:3])],
        DataItem(badcase_id=uuid.uuid4(), features={"alcohol": 11, "malic_acid": 1.5, "ash": 2.0, "colour": "red"},
                 ground_truth=0, function="wine")]))

    async def _sets() -> bool:
        return len((await dam.get("/datasets", params={"is_badcase_test_set": True})).json()) == 2

    await run_until(dam, dam_db, js, _sets)
    r = await dam.post("/datasets", json={"name": "digits-ds", "documents": [{"id": train_doc}],
                                          "split": {"train": 1.0}, "function": "digits"})
    assert r.status_code == 201, r.text
    leak = r.json()["leakage"]
    assert leak["function"] == "digits" and leak["count"] == 3 and set(leak["examples"]) == set(md5s[:3])
    assert [(s["name"], s["version"], s["count"]) for s in leak["badcase_test_sets"]] == [("badcase test set: digits", 1, 3)]
    assert "3 of the 10 train items are also in the badcase test set" in leak["warning"]
    train_id = r.json()["datasets"][0]["id"]
    shown = (await dam.get(f"/datasets/{train_id}")).json()
    assert shown["function"] == "digits" and shown["leakage"]["count"] == 3
    # without a function: every function's current badcase test set is checked
    r = await dam.post("/datasets", json={"name": "digits-any", "documents": [{"id": train_doc}], "split": {"train": 1.0}})
    assert r.json()["leakage"]["count"] == 3 and r.json()["leakage"]["function"] is None
    # left out on request
    r = await dam.post("/datasets", json={"name": "digits-clean", "documents": [{"id": train_doc}],
                                          "split": {"train": 0.8, "test": 0.2}, "function": "digits",
                                          "exclude_badcase_test_set": True})
    assert r.status_code == 201, r.text
    assert (r.json()["leakage"]["count"], r.json()["leakage"]["excluded"], r.json()["leakage"]["warning"]) == (0, 3, None)
    assert sum(d["item_count"] for d in r.json()["datasets"]) == 7
    # a table row is the same item whatever the source wrote ("11.0" and 11)
    r = await dam.post("/datasets", json={"name": "wine-ds", "documents": [{"id": wine_doc["id"]}],
                                          "split": {"train": 1.0}, "function": "wine"})
    assert r.json()["leakage"]["count"] == 1 and r.json()["modality"] == "table"
    # another function's set does not count
    r = await dam.post("/datasets", json={"name": "wine-other", "documents": [{"id": wine_doc["id"]}],
                                          "split": {"train": 1.0}, "function": "digits"})
    assert r.json()["leakage"]["count"] == 0

    # group items by hand on a badcase test set document: it keeps its function
    bts = (await dam.get("/documents", params={"function": "digits"})).json()[0]
    r = await dam.post("/datasets", json={"name": "badcase test set: digits", "documents": [{"id": bts["id"]}],
                                          "split": {"test": 1.0}})
    assert r.status_code == 201, r.text
    manual = r.json()["datasets"][0]
    assert (manual["function"], manual["is_badcase_test_set"], manual["version"]) == ("digits", True, 2)
    assert r.json()["leakage"] is None
    grouped = (await outbox_events(dam_db, "dataset.grouped"))[-1]["data"]
    assert (grouped["function"], grouped["is_badcase_test_set"], grouped["modality"]) == ("digits", True, "file")
    wrong = await dam.post("/datasets", json={"name": "x", "documents": [{"id": bts["id"]}], "split": {"test": 1.0},
                                              "function": "wine"})
    assert wrong.status_code == 422 and "badcase test set of 'digits'" in wrong.json()["detail"]
    wine_bts = (await dam.get("/documents", params={"function": "wine"})).json()[0]
    both = await dam.post("/datasets", json={"name": "x", "documents": [{"id": bts["id"]}, {"id": wine_bts["id"]}],
                                             "split": {"test": 1.0}})
    assert both.status_code == 422 and "one function at a time" in both.json()["detail"]


class CountingStore:
    """The shared object store, counting what is read from it (a re-hash would read each object whole)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.reads: list[list[Any]] = []  # per read: [key, bytes read]

    async def get(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        stream = await self.store.get(key, chunk_size=chunk_size)
        read: list[Any] = [key, 0]
        self.reads.append(read)

        async def counted() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream:
                    read[1] += len(chunk)
                    yield chunk
            finally:
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
        return counted()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_an_item_sent_with_its_md5_is_taken_once_it_exists_without_reading_it_to_hash(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    """BAM sends one reference and the MD5 of its data: DAM stats the object and copies it under that MD5, reading
    only the head it tells the type from; a missing object is dead-lettered with the reason."""
    raw = dam.app.state.raw_store  # type: ignore[attr-defined]
    image = png(20, 10, seed=9) + random_bytes(3 * SNIFF_BYTES)  # a PNG with trailing bytes, 3x the head
    key = f"bam/data/{md5(image)}"
    await raw.put(key, iterate(image))
    counting = CountingStore(raw)
    badcase, missing = uuid.uuid4(), uuid.uuid4()
    await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=badcase, data_refs=[f"key:{key}"], md5=md5(image), ground_truth="7", function="digits")]))
    gone_id = await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=missing, data_refs=["key:bam/data/" + "e" * 32], md5="e" * 32, ground_truth="1",
                 function="digits")]))

    async def _both() -> bool:
        letters = (await dam.get("/dead-letters")).json()
        return bool((await dam.get("/datasets")).json()) and any(d["event_id"] == str(gone_id) for d in letters)

    await run_until(dam, dam_db, js, _both, raw=counting)
    # each attempt (a failing batch is retried one event at a time) read the head only, of an object 3x as large
    assert counting.reads and all(read == [key, SNIFF_BYTES] for read in counting.reads)
    f = (await dam.get(f"/files/{md5(image)}")).json()
    assert (f["size"], f["media_type"], f["width"], f["height"]) == (len(image), "image", 20, 10)
    assert (await dam.get(f"/files/{md5(image)}/content")).content == image
    rows = (await dam.get("/documents", params={"function": "digits"})).json()
    assert [(d["current_version"], d["row_count"]) for d in rows] == [(1, 1)]
    letter = next(d for d in (await dam.get("/dead-letters")).json() if d["event_id"] == str(gone_id))
    assert str(missing) in letter["error"] and "no object under this key" in letter["error"]


async def append(dam_db: str, ctx: ServiceContext[Settings], event: Envelope[BadcaseTestDataRequested]) -> None:
    """The consumer's unit of work: the handler in one transaction, as the consumer runner commits it."""
    db = Database(dam_db)
    try:
        async with db.transaction() as session:
            await on_test_data_requested(event, session, ctx)
    finally:
        await db.dispose()


async def stored_rows(dam_db: str, document_id: str) -> list[tuple[str, str, int | None]]:
    """Every row the document's versions hold in the table: (row id, label, the version that retired it)."""
    from sqlalchemy import select

    from dam.document.models import DocumentRow, DocumentVersion

    db = Database(dam_db)
    try:
        async with db.transaction() as session:
            found = await session.execute(
                select(DocumentRow.id, DocumentRow.label, DocumentRow.retired_in)
                .join(DocumentVersion, DocumentVersion.id == DocumentRow.version_id)
                .where(DocumentVersion.document_id == uuid.UUID(document_id)).order_by(DocumentRow.position))
            return [(str(i), str(label), retired) for i, label, retired in found.tuples()]
    finally:
        await db.dispose()


async def test_a_request_appends_its_rows_and_the_same_request_twice_appends_once(
        dam: httpx.AsyncClient, dam_db: str) -> None:
    """Each request is a new version that inserts its rows only: the rows in stay as they are (same ids), a badcase
    added again retires its old row; the same request delivered twice (a new envelope each time) appends once."""
    app = dam.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    images = [png(6, 6, seed=200 + i) for i in range(3)]
    md5s = [(await dam.post("/files", content=im)).json()["md5"] for im in images]
    b1, b2, b3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def item(badcase: uuid.UUID, i: int, label: str) -> DataItem:
        return DataItem(badcase_id=badcase, data_refs=[f"md5:{md5s[i]}"], md5=md5s[i], ground_truth=label,
                        function="faces")

    first = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[item(b1, 0, "sad"), item(b2, 1, "happy")])
    await append(dam_db, ctx, new_envelope(first))
    doc = (await dam.get("/documents", params={"function": "faces"})).json()[0]
    v1 = {r["label"]: r["id"] for r in (await dam.get(f"/documents/{doc['id']}/rows")).json()["items"]}

    second = BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[item(b1, 0, "angry"), item(b3, 2, "calm")])
    for _ in range(2):  # a duplicate delivery
        await append(dam_db, ctx, new_envelope(second))
    doc = (await dam.get(f"/documents/{doc['id']}")).json()
    assert (doc["current_version"], doc["row_count"]) == (2, 3)
    v2 = {r["label"]: r["id"] for r in (await dam.get(f"/documents/{doc['id']}/rows")).json()["items"]}
    assert set(v2) == {"happy", "angry", "calm"} and v2["happy"] == v1["happy"]  # the row in stays, not copied
    assert {r["label"] for r in (await dam.get(f"/documents/{doc['id']}/rows", params={"version": 1})).json()[
        "items"]} == {"sad", "happy"}
    # the table holds each row once: v1's two, and the two v2 appended (v1's "sad" retired by v2)
    assert [(label, retired) for _, label, retired in await stored_rows(dam_db, doc["id"])] == [
        ("sad", 2), ("happy", None), ("angry", None), ("calm", None)]
    versions = (await dam.get(f"/documents/{doc['id']}/versions")).json()
    assert [(v["version"], v["row_count"]) for v in versions] == [(1, 2), (2, 3)]
    sets = (await dam.get("/datasets", params={"function": "faces"})).json()
    assert [(d["version"], d["item_count"]) for d in sets] == [(2, 3), (1, 2)]
    assert [e["data"]["row_count"] for e in await outbox_events(dam_db, "document.created")] == [2, 3]
    # search across documents names each row's document and current version, old rows included
    found = (await dam.post("/search", json={"q": "happy"})).json()["items"]
    assert [(r["document_id"], r["document_version"], r["id"]) for r in found] == [(doc["id"], 2, v1["happy"])]


async def test_a_batch_of_requests_makes_a_version_each_and_one_freeze_a_function(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]
    """Requests applied in one unit of work (the consumer's batch when a backlog builds up): each request is a
    version of its function's document, and each function's latest version is frozen once, as the test dataset
    of every row, with the last request's correlation; freezing every version would write the whole set again
    each time. Then the same through the consumer on NATS: nothing lost, the set frozen at the latest version."""
    app = dam.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    images = [png(5, 5, seed=300 + i) for i in range(6)]
    md5s = [(await dam.post("/files", content=im)).json()["md5"] for im in images]

    def request(i: int, function: str) -> Envelope[BadcaseTestDataRequested]:
        return new_envelope(BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[DataItem(
            badcase_id=uuid.uuid4(), data_refs=[f"md5:{md5s[i]}"], md5=md5s[i], ground_truth=f"l{i}",
            function=function)]))

    batch = [request(0, "faces"), request(1, "cars"), request(2, "faces"), request(3, "faces")]
    db = Database(dam_db)
    try:
        async with db.transaction() as session:
            for event in batch:
                await on_test_data_requested(event, session, ctx)
    finally:
        await db.dispose()
    docs = {d["function"]: d for d in (await dam.get("/documents", params={"kind": "badcase test set"})).json()}
    assert {f: (d["current_version"], d["row_count"]) for f, d in docs.items()} == {"faces": (3, 3), "cars": (1, 1)}
    grouped = await outbox_events(dam_db, "dataset.grouped")
    assert sorted((e["data"]["function"], e["data"]["version"], e["data"]["item_count"]) for e in grouped) == [
        ("cars", 1, 1), ("faces", 1, 3)]
    faces = next(e for e in grouped if e["data"]["function"] == "faces")
    assert faces["correlation_id"] == str(batch[3].correlation_id)
    shown = (await dam.get(f"/datasets/{faces['data']['dataset_id']}")).json()
    assert shown["spec"]["documents"] == [{"id": docs["faces"]["id"], "version": 3}]
    manifest = (await dam.get(f"/datasets/{faces['data']['dataset_id']}/manifest")).text.splitlines()
    assert sorted(json.loads(x)["label"] for x in manifest) == ["l0", "l2", "l3"]

    # the consumer on NATS: two more requests for faces, however they are batched, end at version 5 frozen
    for i in (4, 5):
        await publish(js, request(i, "faces").data)

    async def _frozen_at_5() -> bool:
        sets = (await dam.get("/datasets", params={"function": "faces"})).json()
        return bool(sets) and sets[0]["spec"]["documents"][0]["version"] == 5

    await run_until(dam, dam_db, js, _frozen_at_5)
    sets = (await dam.get("/datasets", params={"function": "faces"})).json()
    assert sets[0]["item_count"] == 5 and 2 <= len(sets) <= 3
    assert (await dam.get(f"/documents/{docs['faces']['id']}")).json()["current_version"] == 5
