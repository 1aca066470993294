from fastapi import FastAPI

from mlife_shared.app import ServiceSpec, create_app
from dam.config import Settings

SPEC = ServiceSpec(
    name="dam",
    title="DAM — data analysis & management",
    description="Upload with MD5 dedup, documents, labelling tasks, distribution analysis and group items into datasets.",
    settings_cls=Settings,
    migrations="dam.migrations",
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
