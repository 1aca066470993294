import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext, ServiceSpec, create_app
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered, TestingRequested
from mlife_shared.jobs import Job
from mlife_shared.messaging.consumer import Subscription
from mtt.config import Settings
from mtt.report.router import router as report_router
from mtt.task import models as _models  # noqa: F401 - the tables, for migrations
from mtt.task.consumers import on_dataset_grouped, on_model_registered, on_testing_requested
from mtt.task.router import router as task_router
from mtt.task.service import TaskService


def jobs(ctx: ServiceContext[Settings]) -> list[Job]:
    settings = ctx.settings

    async def requeue_stale(session: AsyncSession) -> int:
        return await TaskService(session, settings, ctx.store).requeue_stale()

    return [Job("requeue-stale-runs", max(10.0, settings.stale_after_seconds / 2), requeue_stale)]


def subscriptions(ctx: ServiceContext[Settings]) -> list[Subscription]:
    return [
        Subscription.of(DatasetGrouped, on_dataset_grouped, ctx),
        Subscription.of(ModelRegistered, on_model_registered, ctx),
        Subscription.of(TestingRequested, on_testing_requested, ctx),
    ]


@asynccontextmanager
async def embedded_runner(app: FastAPI) -> AsyncIterator[None]:
    """`MLIFE_MTT_EMBEDDED_RUNNERS=N` (set by `python -m mtt all`, the embedded platform): N runner slots in
    this process, so `mlife up` runs tasks with nothing else started. Distributed: `python -m mtt runner`."""
    settings: Settings = app.state.settings
    if settings.embedded_runners <= 0:
        yield
        return
    from mtt.runner.runner import Runner

    stop = asyncio.Event()
    runner = Runner(settings, runner_id=f"embedded-{os.getpid()}", concurrency=settings.embedded_runners)
    task = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        with suppress(BaseException):
            await asyncio.wait_for(task, 30)


SPEC = ServiceSpec(
    name="mtt",
    title="MTT — model training & testing",
    description="Training and testing tasks with a Task ID, user code runners, the built-in ONNX evaluator and "
                "MLflow tracking.",
    settings_cls=Settings,
    migrations="mtt.migrations",
    subscriptions=subscriptions,
    jobs=jobs,
    routers=lambda: [task_router, report_router],
    extra_lifespan=embedded_runner,
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
