"""BAM's consumers on real NATS JetStream and PostgreSQL: testing outcomes per model version (with a
regression), mispredictions reported as badcases, and serving feedback."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import suppress
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from bam.app import SPEC, subscriptions
from mlife_shared.app import ServiceContext
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import ServingFeedback, TestingCompleted
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, durable_name
from mlife_shared.objectstore import LocalObjectStore, ScopedStore
from mlife_shared.objectstore.base import iterate
from tests.backbone.conftest import wait_for
from tests.bam.test_badcase import report


@pytest.fixture
async def bus(nats_url: str):  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    ctx_subs = subscriptions(None)  # type: ignore[arg-type]
    for stream in ("MLIFE_MTT", "MLIFE_MSM"):
        await js.purge_stream(stream)
    for sub in ctx_subs:
        with suppress(NotFoundError):
            await js.delete_consumer("MLIFE_MTT" if sub.subject.startswith("testing") else "MLIFE_MSM",
                                     durable_name("bam", sub))
    yield js
    await nc.close()


async def publish(js, data) -> None:  # type: ignore[no-untyped-def]
    env = new_envelope(data)
    await js.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})


async def run_consumers(bam: httpx.AsyncClient, bam_db: str, js, until) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    app = bam.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    runner = ConsumerRunner("bam", Database(bam_db), js, subscriptions(ctx), max_deliver=2, backoff=[0.1])
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(until, 30, "the consumers")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return runner


async def write_outcomes(bam: httpx.AsyncClient, lines: list[dict]) -> str:
    store: LocalObjectStore = bam.app.state.raw_store  # type: ignore[attr-defined]
    key = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
    await store.put(key, iterate("\n".join(json.dumps(x) for x in lines).encode() + b"\n"))
    return key


async def test_outcomes_fix_then_regress_and_mispredictions_become_badcases(bam: httpx.AsyncClient, bam_db: str,
                                                                            bus) -> None:  # type: ignore[no-untyped-def]
    a = (await bam.post("/badcases", json=report())).json()
    b = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    v1 = await write_outcomes(bam, [
        {"badcase_id": a["id"], "correct": True, "prediction": "sad", "ground_truth": "sad"},
        {"badcase_id": b["id"], "correct": False, "prediction": "happy", "ground_truth": "angry"},
        {"data_ref": "a" * 32, "correct": False, "prediction": "cat", "ground_truth": "dog"},
        {"data_ref": "b" * 32, "correct": True, "prediction": "dog", "ground_truth": "dog"},
    ])
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="expr", model_version="2.0",
                                        function="emotion", outcomes_key=v1))

    async def _fixed() -> bool:
        return (await bam.get(f"/badcases/{a['id']}")).json()["status"] == "fixed"

    await run_consumers(bam, bam_db, bus, _fixed)
    assert (await bam.get(f"/badcases/{b['id']}")).json()["status"] == "new"
    testing = (await bam.get("/badcases", params={"source": "testing"})).json()["items"]
    assert len(testing) == 1 and testing[0]["ground_truth"] == "dog" and testing[0]["model_version"] == "2.0"
    assert testing[0]["data_md5"] == "a" * 32

    v2 = await write_outcomes(bam, [{"badcase_id": a["id"], "correct": False, "prediction": "happy"},
                                    {"data_ref": "a" * 32, "correct": False, "prediction": "cat",
                                     "ground_truth": "dog"}])
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="expr", model_version="3.0",
                                        function="emotion", outcomes_key=v2))

    async def _regressed() -> bool:
        return (await bam.get(f"/badcases/{a['id']}")).json()["status"] == "regressed"

    await run_consumers(bam, bam_db, bus, _regressed)
    outcomes = (await bam.get(f"/badcases/{a['id']}/outcomes")).json()
    by_version = {o["model_version"]: o["passed"] for o in outcomes["by_model_version"]}
    assert by_version == {"2.0": True, "3.0": False}
    assert len(outcomes["history"]) == 2
    again = (await bam.get("/badcases", params={"source": "testing"})).json()["items"]
    assert len(again) == 1 and again[0]["frequency"] == 2, "the same misprediction merged"
    history = (await bam.get(f"/badcases/{a['id']}/history")).json()
    assert [h["new"] for h in history] == ["fixed", "regressed"] and history[0]["actor"].startswith("testing:")


async def test_serving_feedback_becomes_a_badcase_with_its_deployment(bam: httpx.AsyncClient, bam_db: str,
                                                                      bus) -> None:  # type: ignore[no-untyped-def]
    deployment = uuid.uuid4()
    await publish(bus, ServingFeedback(deployment_id=deployment, model_name="digits", model_version="4",
                                       function="digit recognition", input_ref="c" * 32, prediction="3",
                                       correct_label="8", client_id="shop-12", device_id="cam-3"))

    async def _filed() -> bool:
        return bool((await bam.get("/badcases", params={"source": "serving"})).json()["items"])

    await run_consumers(bam, bam_db, bus, _filed)
    item = (await bam.get("/badcases", params={"source": "serving"})).json()["items"][0]
    assert item["function"] == "digit recognition" and item["ground_truth"] == "8" and item["prediction"] == "3"
    assert item["client_id"] == "shop-12" and item["device_id"] == "cam-3" and item["data_md5"] == "c" * 32
    occ = (await bam.get(f"/badcases/{item['id']}/occurrences")).json()
    assert occ[0]["deployment_id"] == str(deployment) and occ[0]["source"] == "serving"


async def test_unreadable_outcomes_are_dead_lettered_not_dropped(bam: httpx.AsyncClient, bam_db: str,
                                                                 bus) -> None:  # type: ignore[no-untyped-def]
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="m", model_version="1",
                                        outcomes_key="mtt/outcomes/missing.jsonl"))
    admin = {"X-MLife-Identity": bam.headers["X-MLife-Identity"]}

    async def _dead() -> bool:
        r = await bam.get("/dead-letters", headers=admin)
        return len(r.json()) == 1

    await run_consumers(bam, bam_db, bus, _dead)
    letter = (await bam.get("/dead-letters")).json()[0]
    assert letter["reason"] == "failed" and "missing.jsonl" in letter["error"]
