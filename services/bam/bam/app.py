from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase import models as _models  # noqa: F401 - the tables, for migrations
from bam.badcase.consumers import on_serving_feedback
from bam.badcase.router import router as badcase_router
from bam.badcase.service import BadcaseService
from bam.config import Settings
from bam.importing.router import router as import_router
from bam.outcome.consumers import on_testing_completed
from bam.outcome.router import router as outcome_router
from bam.production import models as _production_models  # noqa: F401 - the tables, for migrations
from bam.production.consumers import on_model_promoted
from bam.production.router import router as production_router
from bam.stats.router import router as stats_router
from mlife_shared.app import ServiceContext, ServiceSpec, create_app
from mlife_shared.events.contracts import ModelPromoted, ServingFeedback, TestingCompleted
from mlife_shared.jobs import Job
from mlife_shared.messaging.consumer import Subscription


def subscriptions(ctx: ServiceContext[Settings]) -> list[Subscription]:
    return [
        Subscription.of(TestingCompleted, on_testing_completed, ctx, ack_wait_seconds=120),
        Subscription.of(ServingFeedback, on_serving_feedback, ctx),
        Subscription.of(ModelPromoted, on_model_promoted, ctx, ack_wait_seconds=120),
    ]


def jobs(ctx: ServiceContext[Settings]) -> list[Job]:
    settings = ctx.settings

    async def rescore(session: AsyncSession) -> int:
        return await BadcaseService(session, settings).rescore_all()

    return [Job("priority-rescore", settings.rescore_interval_seconds, rescore)]


SPEC = ServiceSpec(
    name="bam",
    title="BAM — badcase analysis & management",
    description="Record, dedupe, prioritise, retrieve, analyse and preview badcases; add them to test data.",
    settings_cls=Settings,
    migrations="bam.migrations",
    subscriptions=subscriptions,
    jobs=jobs,
    routers=lambda: [import_router, badcase_router, outcome_router, stats_router, production_router],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
