from functools import partial

from fastapi import FastAPI

from dam.config import Settings
from dam.dataset import models as _dataset_models  # noqa: F401
from dam.dataset.router import router as dataset_router
from dam.document import models as _document_models  # noqa: F401 - the tables, for migrations
from dam.document.router import router as document_router, search_router
from dam.file import models as _file_models  # noqa: F401
from dam.file.router import router as file_router
from dam.labelling import models as _labelling_models  # noqa: F401
from dam.labelling.reconcile import reconcile_lifespan
from dam.labelling.router import router as labelling_router, webhook_router
from dam.testset.consumers import on_test_data_requested
from mlife_shared.app import ServiceContext, ServiceSpec, create_app
from mlife_shared.messaging.consumer import Subscription


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    return [Subscription("test-data-requested", "badcase.test_data_requested",
                         partial(on_test_data_requested, ctx=ctx), ack_wait_seconds=120)]


SPEC = ServiceSpec(
    name="dam",
    title="DAM — data analysis & management",
    description="Upload with MD5 dedup, documents, labelling tasks, distribution analysis and group items into datasets.",
    settings_cls=Settings,
    migrations="dam.migrations",
    subscriptions=subscriptions,
    routers=lambda: [file_router, document_router, search_router, dataset_router, labelling_router, webhook_router],
    extra_lifespan=reconcile_lifespan,
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
