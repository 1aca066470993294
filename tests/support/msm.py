"""MSM in the tests: its settings, uploads, events delivered through its consumers, the gate's steps."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from mlife_shared.app import ServiceContext
from mlife_shared.events import EventData, new_envelope
from mlife_shared.events.contracts import DatasetGrouped, DeploymentRequested, SetKind, TestingCompleted
from mlife_shared.objectstore.base import iterate
from msm.config import Settings
from tests.msm.onnx_models import identity_classifier
from tests.support.auth import SECRET, FreshRole
from tests.support.outbox import outbox_events

MAINTAINER = FreshRole("maintainer", "mia")


def make_settings(db: str, nats_url: str, tmp: Path, **kw: Any) -> Settings:
    return Settings(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET, home=tmp,
                    object_store_path=tmp / "objects", prediction_log_rate=1.0, **kw)


def ctx(client: httpx.AsyncClient) -> ServiceContext:
    app = client.app  # type: ignore[attr-defined]
    return ServiceContext(app.state.settings, app.state.raw_store, app.state.store)


async def outbox(client: httpx.AsyncClient, subject: str | None = None) -> list[dict[str, Any]]:
    return await outbox_events(client.db_url, subject)  # type: ignore[attr-defined]


async def count(client: httpx.AsyncClient, table: str) -> int:
    engine = create_async_engine(client.db_url)  # type: ignore[attr-defined]
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


async def deliver(client: httpx.AsyncClient, handler: Any, data: EventData) -> None:
    """Apply one event with its handler inside a transaction, as the consumer runner does."""
    env = new_envelope(data)
    async with client.app.state.db.transaction() as session:  # type: ignore[attr-defined]
        await handler(env, session, ctx=ctx(client))


async def upload(client: httpx.AsyncClient, name: str, data: bytes, **params: Any) -> httpx.Response:
    return await client.post(f"/models/{name}/versions", content=data, params=params,
                             headers={"content-type": "application/octet-stream"})


async def record_testing(client: httpx.AsyncClient, name: str, version: str, outcomes: dict[str, bool],
                         metrics: dict[str, float], dataset_id: uuid.UUID | None = None, *,
                         set_kind: SetKind = "other", function: str | None = None,
                         model_version_id: uuid.UUID | None = None) -> None:
    """MTT's testing.completed, through MSM's consumer (the gate decides again on it)."""
    from msm.testing.consumers import on_testing_completed

    store = client.app.state.raw_store  # type: ignore[attr-defined]
    key = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
    lines = [{"badcase_id": b, "correct": c} for b, c in outcomes.items()] + [{"sample_id": "s1", "correct": True}]
    await store.put(key, iterate("\n".join(json.dumps(x) for x in lines).encode()))
    await deliver(client, on_testing_completed, TestingCompleted(
        task_id=uuid.uuid4(), model_name=name, model_version=version, dataset_id=dataset_id, metrics=metrics,
        outcomes_key=key, set_kind=set_kind, function=function, model_version_id=model_version_id))


async def badcase_test_set(client: httpx.AsyncClient, function: str, version: int = 1,
                           dataset_id: uuid.UUID | None = None) -> uuid.UUID:
    """DAM's dataset.grouped for a function's badcase test set, through MSM's consumer."""
    from msm.testing.consumers import on_dataset_grouped

    dataset_id = dataset_id or uuid.uuid4()
    await deliver(client, on_dataset_grouped, DatasetGrouped(
        dataset_id=dataset_id, version=version, purpose="test", manifest_key=f"dam/manifests/{dataset_id}.jsonl",
        item_count=3, is_badcase_test_set=True, name=f"badcase test set: {function}", function=function))
    return dataset_id


async def bring_up(msm: httpx.AsyncClient) -> None:
    """Run the deployer on every deployment.requested in the outbox (as the worker would)."""
    from msm.deployment.consumers import on_deployment_requested

    for env in await outbox(msm, "deployment.requested"):
        await deliver(msm, on_deployment_requested, DeploymentRequested.model_validate(env["data"]))


async def version(msm: httpx.AsyncClient, name: str = "emotion", function: str | None = "emotion",
                  splits: list[uuid.UUID] | None = None, seed: int = 0) -> dict[str, Any]:
    got = await upload(msm, name, identity_classifier(4, seed=seed), test_dataset_ids=[str(s) for s in splits or []])
    assert got.status_code == 201, got.text
    if function is not None:
        patched = await msm.patch(f"/models/{name}", json={"function": function})
        assert patched.status_code == 200, patched.text
    return got.json()


async def deploy(msm: httpx.AsyncClient, v: dict[str, Any], name: str = "emotion", **body: Any) -> httpx.Response:
    headers = body.pop("headers", None)
    return await msm.post("/deployments", json={"name": name, "versions": [{"model_version_id": v["id"]}], **body},
                          headers=headers)


async def production(msm: httpx.AsyncClient, v: dict[str, Any]) -> None:
    got = await msm.post(f"/models/{v['name']}/aliases", json={"alias": "production", "version": v["version"]},
                         headers=MAINTAINER)
    assert got.status_code == 200, got.text


async def result_on(msm: httpx.AsyncClient, v: dict[str, Any], dataset: uuid.UUID, kind: str, accuracy: float,
                 outcomes: dict[str, bool] | None = None) -> None:
    await record_testing(msm, v["name"], v["version"], outcomes or {}, {"accuracy": accuracy}, dataset,
                         set_kind=kind, model_version_id=uuid.UUID(v["id"]))  # type: ignore[arg-type]


async def deployment(msm: httpx.AsyncClient, deployment_id: str) -> dict[str, Any]:
    got = await msm.get(f"/deployments/{deployment_id}")
    assert got.status_code == 200, got.text
    return got.json()
