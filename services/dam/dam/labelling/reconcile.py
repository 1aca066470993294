"""The labelling work that runs outside a request, each piece a job in its own unit of work
(`mlife_shared.jobs.run_job` commits it; the service never does): the completion a webhook made due, run
after the webhook was answered, and the periodic reconciliation (Label Studio never retries a webhook, so
open tasks are pulled from their tool)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from dam.labelling.service import LabellingService
from mlife_shared.jobs import Job, run_job

log = structlog.get_logger(__name__)


def _service(app: FastAPI, session: AsyncSession) -> LabellingService:
    return LabellingService(session, app.state.store, app.state.settings, app.state.plugins)


async def complete_after_webhook(app: FastAPI, task_id: uuid.UUID) -> None:
    """Complete a task a webhook fully annotated. A failure is logged: the reconciliation completes it later."""
    async def complete(session: AsyncSession) -> bool:
        return await _service(app, session).complete(task_id)

    try:
        await run_job(app.state.db, Job("labelling-complete", 0, complete))
    except Exception as exc:  # noqa: BLE001 - the reconciliation completes it later
        log.warning("labelling_completion_failed", task_id=str(task_id), error=repr(exc))


async def reconcile_open(app: FastAPI) -> int:
    ids: list[uuid.UUID] = []

    async def open_tasks(session: AsyncSession) -> None:
        ids.extend(await _service(app, session).open_in_a_tool())

    await run_job(app.state.db, Job("labelling-open-tasks", 0, open_tasks))
    for task_id in ids:
        async def reconcile(session: AsyncSession, task_id: uuid.UUID = task_id) -> None:
            await _service(app, session).reconcile(task_id)

        try:
            await run_job(app.state.db, Job("labelling-reconcile", 0, reconcile))
        except Exception as exc:  # noqa: BLE001 - one failing task must not stop the others
            log.warning("labelling_reconcile_failed", task_id=str(task_id), error=repr(exc))
    return len(ids)


async def _loop(app: FastAPI, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await reconcile_open(app)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment
            log.warning("labelling_reconcile_loop_failed", error=repr(exc))


@asynccontextmanager
async def reconcile_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    task = None
    outside_tools = [n for n in app.state.plugins.active("labelling") if n != "labelstudio"]
    if (settings.labelstudio_url or outside_tools) and settings.labelstudio_reconcile_seconds > 0:
        task = asyncio.create_task(_loop(app, settings.labelstudio_reconcile_seconds), name="labelling-reconcile")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
