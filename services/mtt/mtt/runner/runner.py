"""`python -m mtt runner`: take run requests from the work queue and run each (execution.py) in a free slot.

The loop: publish pending run requests (queue.py), take a slot, fetch one message, claim its task (queued →
running) and run it; the message is acked when the run's end state is written. A runner that stops hands its
runs back to the queue as new attempts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from contextlib import suppress

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from mlife_shared.db import Database
from mlife_shared.errors import is_database_unavailable
from mlife_shared.messaging.bus import connect_with_retry
from mlife_shared.objectstore import ScopedStore, make_store
from mtt.config import Settings
from mtt.runner.backends import Backend
from mtt.runner.context import RunnerContext
from mtt.runner.execution import Execution, RunInterrupted
from mtt.runner.plugins import SDK_DIR, backend_name, make_backend
from mtt.runner.queue import RunMessage, dispatch_pending, durable, ensure_consumer, ensure_stream, subject
from mtt.runner.result import RunResult
from mtt.task.models import Task

__all__ = ["SDK_DIR", "Runner", "main", "make_backend"]  # SDK_DIR and make_backend: where tests look for them

log = structlog.get_logger(__name__)
REQUEUE_DELAYS = (1, 1, 2, 2, 3, 5, 5, 5, 10, 10, 10, 10)  # about a minute for a database to come back


class Runner:
    def __init__(self, settings: Settings, *, runner_id: str | None = None, queue: str | None = None,
                 backend: Backend | None = None, concurrency: int = 1) -> None:
        self.settings = settings
        self.id = runner_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queue = queue or settings.default_queue
        self.backend = backend or make_backend(settings)
        self.backend_name = backend_name(settings) if backend is None else str(getattr(backend, "name", "custom"))
        self.concurrency = concurrency
        self.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        self.raw_store = make_store(settings)
        self.store = ScopedStore(self.raw_store, "mtt")
        self.ctx = RunnerContext(self.id, settings, self.db, self.raw_store, self.store, self.backend,
                                 self.backend_name)
        self.nc: NATS | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self.nc = await connect_with_retry(self.settings.nats_url, name=f"mtt-runner-{self.id}", stop=stop,
                                           **self.settings.nats_credentials())
        js = self.nc.jetstream()
        await ensure_stream(js, self.settings)
        await ensure_consumer(js, self.settings, self.queue)
        psub = await js.pull_subscribe(subject(self.settings, self.queue), durable=durable(self.queue),
                                       stream=self.settings.runs_stream)
        log.info("runner_started", runner=self.id, queue=self.queue, backend=self.backend_name)
        running: set[asyncio.Task[None]] = set()
        try:
            await self._loop(js, psub, stop, running)
        finally:
            await _cancel_all(running)
            with suppress(Exception):
                await psub.unsubscribe()
            with suppress(Exception):
                await self.nc.close()  # not drain(): a pull subscription's drain waits out its 30 s timeout
            await self.db.dispose()
            log.info("runner_stopped", runner=self.id)

    async def _loop(self, js: JetStreamContext, psub: JetStreamContext.PullSubscription, stop: asyncio.Event,
                    running: set[asyncio.Task[None]]) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        free = list(range(self.concurrency))  # slot numbers: a sandbox gives each its own uid
        while not stop.is_set():
            with suppress(Exception):
                await dispatch_pending(self.db, js, self.settings)
            if not await _acquire_or_stop(slots, stop):
                break
            try:
                msgs = await psub.fetch(1, timeout=self.settings.poll_seconds)
            except (TimeoutError, NatsTimeout):
                slots.release()
                continue
            except Exception:  # noqa: BLE001 - NATS hiccup: retry
                slots.release()
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            for msg in msgs:
                t = asyncio.create_task(self._handle(msg, slots, free))
                running.add(t)
                t.add_done_callback(running.discard)

    async def _handle(self, msg: Msg, slots: asyncio.Semaphore, free: list[int]) -> None:
        slot = free.pop(0)
        try:
            try:
                req = RunMessage.decode(msg.data)
            except (ValueError, KeyError):
                await msg.term()
                return
            task = await self._claim(req)
            if task is None:
                await msg.ack()
                return
            try:
                await self.execute(task, msg, slot=slot)
            except asyncio.CancelledError:  # shutting down: hand the run back to the queue at once
                await asyncio.shield(self._requeue(task, msg))
                raise
            except RunInterrupted:  # the database went away under the run: queued again once it is back
                await self._requeue_when_back(task, msg)
                return
            await msg.ack()
        except Exception:  # noqa: BLE001 - left unacked: redelivered after ack_wait, taken over when stale
            log.exception("run_crashed", runner=self.id)
        finally:
            free.append(slot)
            slots.release()

    async def execute(self, task: Task, msg: Msg | None = None, *, slot: int = 0) -> RunResult:
        return await Execution(self.ctx, task, msg, slot=slot).run()

    async def _requeue(self, task: Task, msg: Msg) -> None:
        """A new attempt (its own log and work dir) queued through a new run request; this message is done."""
        with suppress(Exception):
            async with self.db.transaction() as session:
                await self.ctx.runs(session).hand_back(task.id, task.attempt, self.id)
            await msg.ack()
            log.info("run_requeued", task_id=str(task.id), runner=self.id)

    async def _requeue_when_back(self, task: Task, msg: Msg) -> None:
        """`_requeue`, tried until the database answers again (the message kept in progress meanwhile); if it never
        does here, the message is left unacked: redelivered after its ack wait, the stale run taken over."""
        for delay in REQUEUE_DELAYS:
            with suppress(Exception):
                await msg.in_progress()
            try:
                async with self.db.transaction() as session:
                    await self.ctx.runs(session).hand_back(task.id, task.attempt, self.id)
            except Exception as exc:  # noqa: BLE001 - still down: wait and try again
                if not is_database_unavailable(exc):
                    raise
                await asyncio.sleep(delay)
                continue
            await msg.ack()
            log.info("run_requeued", task_id=str(task.id), runner=self.id, reason="database unavailable")
            return
        log.warning("run_requeue_gave_up", task_id=str(task.id), runner=self.id)

    async def _claim(self, req: RunMessage) -> Task | None:
        async with self.db.transaction() as session:
            return await self.ctx.runs(session).claim(req.task_id, req.attempt, self.id)


async def _acquire_or_stop(slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    """Take a free slot (True), or see `stop` first (False, no slot held)."""
    acquire = asyncio.create_task(slots.acquire())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not acquire.done():
        acquire.cancel()
        with suppress(asyncio.CancelledError):
            await acquire
    if acquire.done() and not acquire.cancelled():
        if stop.is_set():
            slots.release()
            return False
        return True
    return False


async def _cancel_all(running: set[asyncio.Task[None]]) -> None:
    for t in list(running):
        t.cancel()
    for t in list(running):
        with suppress(BaseException):
            await t


async def main(settings: Settings, *, queue: str | None, concurrency: int, runner_id: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await Runner(settings, runner_id=runner_id, queue=queue, concurrency=concurrency).run(stop)
