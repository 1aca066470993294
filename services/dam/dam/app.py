from fastapi import FastAPI

from dam.config import Settings
from dam.file import models as _file_models  # noqa: F401 - the tables, for migrations
from dam.file.router import router as file_router
from mlife_shared.app import ServiceSpec, create_app

SPEC = ServiceSpec(
    name="dam",
    title="DAM — data analysis & management",
    description="Upload with MD5 dedup, documents, labelling tasks, distribution analysis and group items into datasets.",
    settings_cls=Settings,
    migrations="dam.migrations",
    routers=lambda: [file_router],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
