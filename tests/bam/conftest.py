from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from bam.app import SPEC, subscriptions
from bam.config import Settings
from mlife_shared.app import ServiceContext, create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity
from mlife_shared.db import Database
from mlife_shared.events import new_envelope, stream_for_subject
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, durable_name
from mlife_shared.objectstore import LocalObjectStore
from mlife_shared.objectstore.base import iterate
from tests.backbone.conftest import wait_for

SECRET = "bam-test-secret-" + uuid.uuid4().hex


def as_role(role: Role, name: str | None = None) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), SECRET)}


@pytest.fixture
async def bam_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("bam.migrations")


@pytest.fixture
async def bam(bam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """BAM on a fresh PostgreSQL database, called as a tester."""
    settings = Settings(environment="test", database_url=bam_db, nats_url=nats_url, identity_secret=SECRET,
                        home=tmp_path, object_store_path=tmp_path / "objects",
                        function_weights={"emotion": 2.0})
    app = create_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://bam/api/bam",
                                     headers=as_role("tester", "tess")) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


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
            await js.delete_consumer(stream_for_subject(sub.subject), durable_name("bam", sub))
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


def outcomes_recorded(bam: httpx.AsyncClient, badcase_id: str, n: int) -> Callable[[], Awaitable[bool]]:
    """Until the badcase has `n` outcomes: they commit with the status changes of their event."""

    async def _recorded() -> bool:
        return len((await bam.get(f"/badcases/{badcase_id}/outcomes")).json()["history"]) >= n
    return _recorded
