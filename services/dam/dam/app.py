from fastapi import FastAPI

from dam.config import Settings
from dam.dataset import models as _dataset_models  # noqa: F401
from dam.dataset.router import router as dataset_router
from dam.document import models as _document_models  # noqa: F401 - the tables, for migrations
from dam.document.router import router as document_router, search_router
from dam.file import models as _file_models  # noqa: F401
from dam.file.router import router as file_router
from mlife_shared.app import ServiceSpec, create_app

SPEC = ServiceSpec(
    name="dam",
    title="DAM — data analysis & management",
    description="Upload with MD5 dedup, documents, labelling tasks, distribution analysis and group items into datasets.",
    settings_cls=Settings,
    migrations="dam.migrations",
    routers=lambda: [file_router, document_router, search_router, dataset_router],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
