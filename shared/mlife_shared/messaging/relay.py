"""The relay: publishes committed outbox rows to JetStream with `Nats-Msg-Id` = event id, and marks
them published after the PubAck. Safe to run twice: PostgreSQL rows are claimed with
`FOR UPDATE SKIP LOCKED`, and JetStream drops a repeated id inside the duplicate window."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from nats.js import JetStreamContext

from mlife_shared.db import Database, is_postgres
from mlife_shared.messaging.repository import NOTIFY_CHANNEL, OutboxRepository

log = structlog.get_logger(__name__)

# After publishing a batch the relay polls every HOT_POLL for HOT_SECONDS (a NOTIFY also wakes it): producers
# send at most one NOTIFY per outbox.NOTIFY_EVERY, counting on this to pick up the commits in between.
HOT_SECONDS, HOT_POLL = 0.25, 0.004


class Relay:
    def __init__(self, db: Database, js: JetStreamContext, *, batch_size: int = 256, poll_seconds: float = 0.5,
                 publish_timeout: float = 5.0, retention: timedelta = timedelta(days=7)) -> None:
        self.db = db
        self.js = js
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.publish_timeout = publish_timeout
        self.retention = retention
        self.published = 0
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def wake(self) -> None:
        self._wake.set()

    async def publish_batch(self) -> int:
        """Publish at most one batch; returns how many rows were published."""
        async with self.db.transaction() as session:
            repo = OutboxRepository(session)
            # PostgreSQL: claimed and marked in one statement (failed rows are un-marked below); elsewhere a
            # SELECT … FOR UPDATE SKIP LOCKED then an UPDATE of the acked rows.
            marked = is_postgres(session)
            rows = await (repo.claim_and_mark if marked else repo.claim_unpublished)(self.batch_size)
            if not rows:
                return 0
            publish = self.js.publish_async
            futures = [await publish(row.subject, row.envelope_json.encode(), headers={"Nats-Msg-Id": str(row.id)})
                       for row in rows]  # in seq order: one connection keeps it
            await asyncio.wait(futures, timeout=self.publish_timeout)
            results = [_outcome(f) for f in futures]
            ok = [row.seq for row, r in zip(rows, results, strict=True) if not isinstance(r, BaseException)]
            failed = [(row.seq, r) for row, r in zip(rows, results, strict=True) if isinstance(r, BaseException)]
            if failed and not ok:  # the transaction rolls back: every row stays unpublished
                raise ConnectionError(f"could not publish: {failed[0][1]!r}")
            if not marked:
                await repo.mark_published(ok)
            if failed:
                error = repr(failed[0][1])
                await (repo.unmark if marked else repo.record_failure)([seq for seq, _ in failed], error)
                log.warning("relay_publish_failed", failed=len(failed), error=error)
            self.published += len(ok)
            return len(ok)

    async def run(self, stop: asyncio.Event) -> None:
        await self._listen()
        loop = asyncio.get_running_loop()
        purge_every, last_purge = 3600.0, loop.time()
        backoff = self.poll_seconds
        hot_until = float("-inf")
        try:
            while not stop.is_set():
                # Clear before reading: a NOTIFY that lands during the batch wakes the next wait at once.
                self._wake.clear()
                try:
                    n = await self.publish_batch()
                    backoff = self.poll_seconds
                except Exception as exc:  # noqa: BLE001 - NATS or DB away: keep the rows, retry later
                    log.warning("relay_error", error=repr(exc))
                    n = 0
                    await _sleep_or(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if n >= self.batch_size:
                    continue
                if n:
                    hot_until = loop.time() + HOT_SECONDS
                wait = min(HOT_POLL, self.poll_seconds) if loop.time() < hot_until else self.poll_seconds
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(_first(self._wake.wait(), stop.wait()), wait)
                if loop.time() - last_purge > purge_every:
                    last_purge = loop.time()
                    async with self.db.transaction() as session:
                        await OutboxRepository(session).purge_published(self.retention)
        finally:
            if self._listener is not None:
                with suppress(Exception):
                    await self._listener.close()

    async def _listen(self) -> None:
        """On PostgreSQL, `NOTIFY` at commit wakes the relay at once; elsewhere it polls."""
        if not is_postgres(self.db.url):
            return
        dsn = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except Exception as exc:  # noqa: BLE001 - polling still works
            log.warning("relay_listen_failed", error=repr(exc))


def _outcome(future: asyncio.Future[Any]) -> object:
    if not future.done():
        future.cancel()
        return TimeoutError("no PubAck in time")
    return future.exception() or future.result()


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
