from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from mlife_shared.app import ServiceContext, create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity
from mlife_shared.events import EventData, new_envelope
from mlife_shared.events.contracts import DatasetGrouped, SetKind, TestingCompleted
from mlife_shared.objectstore.base import iterate
from msm.app import SPEC
from msm.config import Settings

SECRET = "msm-test-secret-" + uuid.uuid4().hex


def as_role(role: Role, name: str | None = None) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), SECRET, ttl_seconds=600)}


class FreshRole(Mapping[str, str]):
    """Headers for a module-level constant: signed anew at each use, so they never expire however long the
    run (a constant signed at collection had expired by the time a 25-minute `make test` reached it)."""

    def __init__(self, role: Role, name: str | None = None) -> None:
        self.role, self.name = role, name

    def __getitem__(self, key: str) -> str:
        return as_role(self.role, self.name)[key]

    def __iter__(self) -> Iterator[str]:
        return iter([IDENTITY_HEADER])

    def __len__(self) -> int:
        return 1


@pytest.fixture
async def msm_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("msm.migrations")


def make_settings(db: str, nats_url: str, tmp: Path, **kw: Any) -> Settings:
    return Settings(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET, home=tmp,
                    object_store_path=tmp / "objects", webhook_dispatch=False, prediction_log_rate=1.0,
                    webhook_backoff_seconds=[0.0], **kw)


@pytest.fixture
async def msm(msm_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """MSM on a fresh PostgreSQL database, called as an engineer."""
    app = create_app(SPEC, make_settings(msm_db, nats_url, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://msm/api/msm",
                                     headers=as_role("engineer", "erin")) as client:
            client.app = app  # type: ignore[attr-defined]
            client.db_url = msm_db  # type: ignore[attr-defined]
            yield client


def ctx(client: httpx.AsyncClient) -> ServiceContext:
    app = client.app  # type: ignore[attr-defined]
    return ServiceContext(app.state.settings, app.state.raw_store, app.state.store)


async def outbox(client: httpx.AsyncClient, subject: str | None = None) -> list[dict[str, Any]]:
    engine = create_async_engine(client.db_url)  # type: ignore[attr-defined]
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT subject, CAST(envelope AS TEXT) FROM outbox ORDER BY seq"))).all()
    finally:
        await engine.dispose()
    return [json.loads(r[1]) for r in rows if subject is None or r[0] == subject]


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
