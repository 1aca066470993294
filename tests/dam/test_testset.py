"""The consumer of `badcase.test_data_requested` on real NATS JetStream and PostgreSQL: items join the
standing badcase test set as a new version (BAM's keyed objects copied into DAM's content-addressed
store); unresolvable data is dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from functools import partial

import httpx
import nats
import pytest

from dam.testset.consumers import on_test_data_requested
from mlife_shared.app import ServiceContext
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.events.contracts import TestDataItem as DataItem
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from mlife_shared.objectstore.base import iterate
from tests.backbone.conftest import wait_for
from tests.dam.helpers import md5, outbox_events, png


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


async def publish(js, data) -> uuid.UUID:  # type: ignore[no-untyped-def]
    env = new_envelope(data)
    await js.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})
    return env.id


async def run_until(dam: httpx.AsyncClient, dam_db: str, js, until) -> None:  # type: ignore[no-untyped-def]
    app = dam.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    sub = Subscription(js.durable, "badcase.test_data_requested",
                       partial(on_test_data_requested, ctx=ctx))
    db = Database(dam_db)
    runner = ConsumerRunner("dam", db, js, [sub], max_deliver=2, backoff=[0.1])
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(until, 30, "the consumer")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await db.dispose()


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
    assert doc["name"] == "badcase test set" and doc["current_version"] == 1
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


async def test_bam_add_to_test_data_reaches_the_badcase_test_set(make_database, dam: httpx.AsyncClient,  # type: ignore[no-untyped-def]
                                                                 dam_db: str, js, nats_url: str, tmp_path) -> None:
    """The real loop: BAM files a badcase with its image, "add to test data", BAM's relay publishes, DAM appends."""
    import json

    from bam.app import SPEC as BAM_SPEC
    from bam.config import Settings as BamSettings
    from mlife_shared.app import create_app
    from mlife_shared.messaging.relay import Relay
    from tests.dam.conftest import SECRET, as_role

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
