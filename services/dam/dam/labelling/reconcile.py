"""The periodic reconciliation: Label Studio never retries a webhook, so open tasks are pulled from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from fastapi import FastAPI

from dam.labelling.repository import LabellingRepository
from dam.labelling.service import LabellingService

log = structlog.get_logger(__name__)


async def reconcile_open(app: FastAPI) -> int:
    async with app.state.db.transaction() as session:
        ids = await LabellingRepository(session).open_in_label_studio()
    for task_id in ids:
        try:
            async with app.state.db.transaction() as session:
                await LabellingService(session, app.state.store, app.state.settings).reconcile(task_id)
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
    if settings.labelstudio_url and settings.labelstudio_reconcile_seconds > 0:
        task = asyncio.create_task(_loop(app, settings.labelstudio_reconcile_seconds), name="labelstudio-reconcile")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
