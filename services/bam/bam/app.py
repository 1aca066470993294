from fastapi import FastAPI

from bam.badcase import models as _models  # noqa: F401 - the tables, for migrations
from bam.badcase.router import router as badcase_router
from bam.config import Settings
from mlife_shared.app import ServiceSpec, create_app

SPEC = ServiceSpec(
    name="bam",
    title="BAM — badcase analysis & management",
    description="Record, dedupe, prioritise, retrieve, analyse and preview badcases; add them to test data.",
    settings_cls=Settings,
    migrations="bam.migrations",
    routers=lambda: [badcase_router],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
