"""The loop on real NATS JetStream: MTT's model.uploaded, testing.completed and testing.failed and DAM's
dataset.grouped arrive on the bus; a deployment waits for its tests, the gate decides when they arrive, MSM's
relay publishes deployment.requested, MSM's own deployer consumes it, and the deployment answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import httpx
import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from mlife_shared.db import Database
from mlife_shared.events import contracts, stream_for_subject
from mlife_shared.events.contracts import DatasetGrouped, ModelUploaded
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription, durable_name
from mlife_shared.messaging.relay import Relay
from mlife_shared.objectstore.base import iterate
from msm.app import subscriptions
from tests.msm.onnx_models import identity_classifier
from tests.support.auth import as_role
from tests.support.msm import ctx, outbox, upload
from tests.support.nats import publish
from tests.support.waiting import wait_for


class FreshRunner(ConsumerRunner):
    """The real runner under a unique service name whose durables start at the end of the streams, so
    events of other test runs sharing this NATS server are not replayed."""

    def _config(self, sub: Subscription) -> ConsumerConfig:
        config = super()._config(sub)
        config.deliver_policy = DeliverPolicy.NEW
        return config


@asynccontextmanager
async def running(msm: httpx.AsyncClient, nats_url: str) -> AsyncIterator[tuple[JetStreamContext, Relay]]:
    """MSM's consumers and relay on the real bus, under a fresh durable name."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    service = f"msm-e2e-{uuid.uuid4().hex[:8]}"
    db = Database(msm.db_url)  # type: ignore[attr-defined]
    subs = subscriptions(ctx(msm))
    runner = FreshRunner(service, db, js, subs, max_deliver=2, backoff=[0.1])
    for sub in subs:
        await runner.ensure_consumer(sub)
    relay = Relay(db, js, poll_seconds=0.05)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(relay.run(stop))]
    try:
        yield js, relay
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        for sub in subs:
            with suppress(NotFoundError):
                await js.delete_consumer(stream_for_subject(sub.subject), durable_name(service, sub))
        await db.dispose()
        await nc.close()


async def status_of(msm: httpx.AsyncClient, deployment_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await msm.get(f"/deployments/{deployment_id}")).json()["status"] == status
    return check


async def test_upload_wait_for_tests_deploy_and_serve_over_nats(msm: httpx.AsyncClient, nats_url: str) -> None:
    async with running(msm, nats_url) as (js, relay):
        store = msm.app.state.raw_store  # type: ignore[attr-defined]
        key = f"mtt/models/{uuid.uuid4()}/model.onnx"
        await store.put(key, iterate(identity_classifier(4)))
        split = uuid.uuid4()
        await publish(js, ModelUploaded(task_id=uuid.uuid4(), model_name="e2e", object_key=key, format="onnx",
                                        md5="0" * 32, size=1, metrics={"accuracy": 0.9}, function="e2e",
                                        test_dataset_ids=[split]))

        async def registered() -> bool:
            return len((await msm.get("/model-versions", params={"name": "e2e"})).json()) == 1

        await wait_for(registered, 30, "model.uploaded to be registered")
        version = (await msm.get("/model-versions", params={"name": "e2e"})).json()[0]
        got = await msm.post("/deployments", json={"name": "e2e", "versions": [{"model_version_id": version["id"]}],
                                                   "thresholds": {"test_split.accuracy": {"min": 0.9}}})
        assert got.status_code == 202, got.text
        asked = [e["data"] for e in await outbox(msm, "testing.requested")]
        assert [(a["model_version_id"], a["dataset_id"]) for a in asked] == [(version["id"], str(split))]

        outcomes = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
        await store.put(outcomes, iterate(json.dumps({"sample_id": "s1", "correct": True}).encode()))
        await publish(js, contracts.TestingCompleted(
            task_id=uuid.uuid4(), model_name="e2e", model_version="1", dataset_id=split,
            model_version_id=uuid.UUID(version["id"]), set_kind="test_split", function="e2e",
            metrics={"accuracy": 0.95}, outcomes_key=outcomes))
        await wait_for(await status_of(msm, got.json()["id"], "live"), 30,
                       "the result to pass the gate and the deployer to bring the deployment up")
        answer = await msm.post("/serve/e2e/predict", json={"inputs": {"x": [0, 0, 0, 1]}},
                                headers=as_role("viewer"))
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        # model.registered, testing.requested, deployment.requested, deployment.succeeded
        assert relay.published >= 4


async def test_a_new_badcase_test_set_and_a_failed_test_over_nats(msm: httpx.AsyncClient, nats_url: str) -> None:
    async with running(msm, nats_url) as (js, _):
        v1 = (await upload(msm, "e2e", identity_classifier(4))).json()
        assert (await msm.patch("/models/e2e", json={"function": "e2e"})).status_code == 200
        assert (await msm.post("/models/e2e/aliases", json={"alias": "production", "version": "1"},
                               headers=as_role("maintainer"))).status_code == 200
        bset = uuid.uuid4()
        await publish(js, DatasetGrouped(dataset_id=bset, version=1, purpose="test", manifest_key="dam/m.jsonl",
                                         item_count=2, is_badcase_test_set=True, function="e2e",
                                         name="badcase test set: e2e"))

        async def asked() -> bool:
            return len(await outbox(msm, "testing.requested")) == 1

        await wait_for(asked, 30, "production to be asked for a result on the new badcase test set")
        assert (await outbox(msm, "testing.requested"))[0]["data"]["model_version_id"] == v1["id"]
        v2 = (await upload(msm, "e2e", identity_classifier(4, seed=1))).json()
        got = await msm.post("/deployments", json={"name": "e2e", "versions": [{"model_version_id": v2["id"]}]})
        assert got.status_code == 202, got.text
        await publish(js, contracts.TestingFailed(
            model_name="e2e", model_version="2", dataset_id=bset, function="e2e", set_kind="badcase_test_set",
            incompatible=True, reason="a tensor of shape [3] is not the model's input [N, 4]"))

        async def failure_recorded() -> bool:
            detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
            return any(e["state"] == "failed" for e in detail["gate"]["evidence"])

        await wait_for(failure_recorded, 30, "testing.failed to be recorded (production's result is still missing)")
        assert (await msm.get(f"/deployments/{got.json()['id']}")).json()["status"] == "awaiting_tests"
        outcomes = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
        await msm.app.state.raw_store.put(outcomes, iterate(b'{"correct": true}'))  # type: ignore[attr-defined]
        await publish(js, contracts.TestingCompleted(
            task_id=uuid.uuid4(), model_name="e2e", model_version="1", dataset_id=bset, set_kind="badcase_test_set",
            metrics={"accuracy": 1.0}, outcomes_key=outcomes))
        await wait_for(await status_of(msm, got.json()["id"], "blocked"), 30, "the failed test to block")
        reasons = (await msm.get(f"/deployments/{got.json()['id']}")).json()["gate"]["reasons"]
        assert any("not the model's input" in r for r in reasons), reasons
