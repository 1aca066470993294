"""One thin handler per subscribed subject: the event → `AutomaticTasks` (task/automatic.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered, TestingRequested
from mtt.config import Settings
from mtt.task.automatic import AutomaticTasks


def _service(session: AsyncSession, ctx: ServiceContext[Settings]) -> AutomaticTasks:
    return AutomaticTasks(session, ctx.settings, ctx.store)


async def on_dataset_grouped(event: Envelope[DatasetGrouped], session: AsyncSession,
                             ctx: ServiceContext[Settings]) -> None:
    await _service(session, ctx).dataset_grouped(event.data)


async def on_model_registered(event: Envelope[ModelRegistered], session: AsyncSession,
                              ctx: ServiceContext[Settings]) -> None:
    await _service(session, ctx).model_registered(event.data)


async def on_testing_requested(event: Envelope[TestingRequested], session: AsyncSession,
                               ctx: ServiceContext[Settings]) -> None:
    await _service(session, ctx).testing_requested(event.data)
