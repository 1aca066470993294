"""A worker refuses to start when a subscription's handler is typed for another event than its contract
(real NATS; the worker's own start-up path), and runs a correctly wired one end to end."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext, ServiceSpec
from mlife_shared.db import Database
from mlife_shared.events import Envelope, new_envelope
from mlife_shared.events.contracts import BadcaseMerged
from mlife_shared.messaging.consumer import Subscription
from mlife_shared.messaging.repository import OutboxRepository
from mlife_shared.worker import run_worker
from tests.backbone.conftest import Pair, pinger_settings, wait_for
from tests.backbone.pinger import PingerSettings, PingRecorded, count, effects, record_effect


async def on_merged(event: Envelope[BadcaseMerged], session: AsyncSession, ctx: ServiceContext[PingerSettings]) -> None:
    raise AssertionError("never called: the worker must not start")


async def on_ping(event: Envelope[PingRecorded], session: AsyncSession,
                  ctx: ServiceContext[PingerSettings]) -> None:
    assert ctx.settings.service_name == "pinger"  # the typed settings of the consumer's own service
    await record_effect(event, session)


def ponger(handler: Any) -> ServiceSpec[PingerSettings]:
    return ServiceSpec(name="ponger", title="ponger", description="test consumer", settings_cls=PingerSettings,
                       subscriptions=lambda ctx: [Subscription.of(PingRecorded, handler, ctx, name="pings")])


async def test_a_worker_with_a_miswired_handler_refuses_to_start(nats_url: str, tmp_path: Path) -> None:
    settings = pinger_settings(f"sqlite+aiosqlite:///{tmp_path / 'ponger.db'}", nats_url, tmp_path)
    with pytest.raises(TypeError, match=r"on_merged takes Envelope\[BadcaseMerged\] but is subscribed to "
                                        r"'ping.recorded'"):
        await asyncio.wait_for(run_worker(ponger(on_merged), settings, handle_signals=False), 60)


async def test_a_worker_runs_a_handler_wired_by_its_contract(pair: Pair, tmp_path: Path) -> None:
    producer = Database(pair.producer_url)
    env = new_envelope(PingRecorded(ping_id=uuid.uuid4(), n=7))
    async with producer.transaction() as session:
        await OutboxRepository(session).add_event(env.id, env.type, env.model_dump_json(), notify=False)
    await producer.dispose()
    await pair.relay().publish_batch()

    stop = asyncio.Event()
    settings = pinger_settings(pair.consumer_url, pair.nats_url, tmp_path)
    worker = asyncio.create_task(run_worker(ponger(on_ping), settings, stop, handle_signals=False))
    try:
        await wait_for(lambda: _applied(pair.consumer_url), what="the ping applied by the ponger's worker")
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    assert await count(pair.consumer_url, effects) == 1


async def _applied(url: str) -> bool:
    return await count(url, effects) == 1
