"""Periodic jobs run by a service's worker (re-scoring, reconciliation, retries): each in its own
transaction, on its own interval, a failure logged and retried at the next tick, never stopping the worker.
With several workers of one service, each runs the job: jobs must be idempotent (and cheap to repeat)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import Database

log = structlog.get_logger(__name__)

JobFn = Callable[[AsyncSession], Awaitable[object]]


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    run: JobFn
    first_delay_seconds: float = 5.0


async def run_job(db: Database, job: Job) -> object:
    async with db.transaction() as session:
        return await job.run(session)


async def run_jobs(db: Database, jobs: list[Job], stop: asyncio.Event) -> None:
    async def loop(job: Job) -> None:
        delay = job.first_delay_seconds
        while True:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
                return
            try:
                result = await run_job(db, job)
                # A frequent job that found nothing to do (the webhook dispatcher's idle ticks) logs at debug.
                (log.info if result else log.debug)("job_done", job=job.name, result=result)
            except Exception:  # noqa: BLE001 - a job's failure waits for its next tick
                log.exception("job_failed", job=job.name)
            delay = job.interval_seconds

    await asyncio.gather(*(loop(j) for j in jobs))
