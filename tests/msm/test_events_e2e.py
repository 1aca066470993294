"""The loop on real NATS JetStream: MTT's model.uploaded and testing.completed arrive on the bus, MSM's
relay publishes deployment.requested, MSM's own deployer consumes it, and the deployment answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import suppress

import httpx
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from mlife_shared.db import Database
from mlife_shared.events import new_envelope, stream_for_subject
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.events.contracts import TestingCompleted as TestingDone
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription, durable_name
from mlife_shared.messaging.relay import Relay
from mlife_shared.objectstore.base import iterate
from msm.app import subscriptions
from tests.backbone.conftest import wait_for
from tests.msm.conftest import as_role, ctx
from tests.msm.onnx_models import identity_classifier


class FreshRunner(ConsumerRunner):
    """The real runner under a unique service name whose durables start at the end of the streams, so
    events of other test runs sharing this NATS server are not replayed."""

    def _config(self, sub: Subscription) -> ConsumerConfig:
        config = super()._config(sub)
        config.deliver_policy = DeliverPolicy.NEW
        return config


async def publish(js, data) -> None:  # type: ignore[no-untyped-def]
    env = new_envelope(data)
    await js.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})


async def test_upload_test_gate_deploy_and_serve_over_nats(msm: httpx.AsyncClient, nats_url: str) -> None:
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
        store = msm.app.state.raw_store  # type: ignore[attr-defined]
        key = f"mtt/models/{uuid.uuid4()}/model.onnx"
        await store.put(key, iterate(identity_classifier(4)))
        task_id = uuid.uuid4()
        await publish(js, ModelUploaded(task_id=task_id, model_name="e2e", object_key=key, format="onnx",
                                        md5="0" * 32, size=1, metrics={"accuracy": 0.9}))

        async def registered() -> bool:
            return len((await msm.get("/model-versions", params={"name": "e2e"})).json()) == 1

        await wait_for(registered, 30, "model.uploaded to be registered")
        version = (await msm.get("/model-versions", params={"name": "e2e"})).json()[0]
        outcomes = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
        await store.put(outcomes, iterate(json.dumps({"badcase_id": str(uuid.uuid4()), "correct": True}).encode()))
        await publish(js, TestingDone(task_id=uuid.uuid4(), model_name="e2e", model_version="1",
                                           metrics={"accuracy": 0.95}, outcomes_key=outcomes))

        async def tested() -> bool:
            return bool((await msm.get(f"/model-versions/{version['id']}")).json()["testing"])

        await wait_for(tested, 30, "testing.completed to be recorded")
        got = await msm.post("/deployments", json={"name": "e2e", "versions": [{"model_version_id": version["id"]}],
                                                   "thresholds": {"accuracy": {"min": 0.9}}})
        assert got.status_code == 201, got.text

        async def is_live() -> bool:
            return (await msm.get(f"/deployments/{got.json()['id']}")).json()["status"] == "live"

        await wait_for(is_live, 30, "the deployer to bring the deployment up")
        answer = await msm.post("/serve/e2e/predict", json={"inputs": {"x": [0, 0, 0, 1]}},
                                headers=as_role("viewer"))
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        assert relay.published >= 3  # model.registered, deployment.requested, deployment.succeeded
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        for sub in subs:
            with suppress(NotFoundError):
                await js.delete_consumer(stream_for_subject(sub.subject), durable_name(service, sub))
        await db.dispose()
        await nc.close()
