from fastapi import FastAPI

from mlife_shared.app import ServiceSpec, create_app
from bam.config import Settings

SPEC = ServiceSpec(
    name="bam",
    title="BAM — badcase analysis & management",
    description="Record, dedupe, prioritise, retrieve, analyse and preview badcases; add them to test data.",
    settings_cls=Settings,
    migrations="bam.migrations",
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
