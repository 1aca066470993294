"""A service's worker: the outbox relay and the event consumers, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress
from typing import TYPE_CHECKING

import structlog

from mlife_shared.db import Database
from mlife_shared.heap import freeze_startup_heap
from mlife_shared.jobs import run_jobs
from mlife_shared.messaging.bus import connect_with_retry, provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner
from mlife_shared.messaging.relay import Relay

if TYPE_CHECKING:  # for the annotations only: the worker imports the API skeleton when it runs (below)
    from mlife_shared.app import ServiceSpec, SettingsT

log = structlog.get_logger(__name__)


async def run_worker(spec: ServiceSpec[SettingsT], settings: SettingsT,
                     stop: asyncio.Event | None = None, *, handle_signals: bool = True) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    nc = await connect_with_retry(settings.nats_url, name=f"{spec.name}-worker", stop=stop,
                                  **settings.nats_credentials())
    try:
        js = nc.jetstream()
        await provision_streams(js, max_age_days=settings.stream_max_age_days, producer=spec.name,
                                replicas=settings.nats_replicas)
        relay = Relay(db, js, batch_size=settings.relay_batch_size, poll_seconds=settings.relay_poll_seconds)
        from mlife_shared.app import service_context

        ctx = service_context(spec, settings)
        subscriptions = spec.subscriptions(ctx)
        runner = ConsumerRunner(spec.name, db, js, subscriptions, max_deliver=settings.consumer_max_deliver,
                                backoff=settings.consumer_backoff_seconds)
        log.info("worker_started", subscriptions=[s.subject for s in runner.subscriptions])
        freeze_startup_heap()
        await asyncio.gather(relay.run(stop), runner.run(stop), run_jobs(db, spec.jobs(ctx), stop))
    finally:
        with suppress(Exception):
            await nc.drain()
        await db.dispose()
        log.info("worker_stopped")
