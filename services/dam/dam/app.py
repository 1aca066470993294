import asyncio
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dam.config import Settings
from dam.dataset import models as _dataset_models  # noqa: F401
from dam.dataset.router import router as dataset_router
from dam.document import models as _document_models  # noqa: F401 - the tables, for migrations
from dam.document.router import router as document_router
from dam.document.router import search_router
from dam.file import models as _file_models  # noqa: F401
from dam.file.router import router as file_router
from dam.labelling import models as _labelling_models  # noqa: F401
from dam.labelling.reconcile import reconcile_lifespan
from dam.labelling.router import router as labelling_router
from dam.labelling.router import webhook_router
from dam.quality import models as _quality_models  # noqa: F401
from dam.quality.router import router as quality_router
from dam.testset import models as _testset_models  # noqa: F401
from dam.testset.consumers import on_test_data_requested
from dam.testset.router import router as conversion_router
from mlife_shared.app import ServiceContext, ServiceSpec, create_app
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.messaging.consumer import Subscription


def subscriptions(ctx: ServiceContext[Settings]) -> list[Subscription]:
    # The name predates Subscription.of (its default would be badcase-test-data-requested): the durable
    # consumer dam-test-data-requested exists in installed JetStreams and in deploy/nats/nats.conf.
    return [Subscription.of(BadcaseTestDataRequested, on_test_data_requested, ctx, name="test-data-requested",
                            ack_wait_seconds=120)]


_SIZED_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Object-store calls run in the default executor (the minio client blocks): size it for concurrent
    # uploads rather than asyncio's cpu+4 default.
    loop = asyncio.get_running_loop()
    if loop not in _SIZED_LOOPS:  # once per loop: several apps (tests, `mlife up`) may share one
        loop.set_default_executor(ThreadPoolExecutor(app.state.settings.io_threads, thread_name_prefix="dam-io"))
        _SIZED_LOOPS.add(loop)
    async with reconcile_lifespan(app):
        yield


SPEC = ServiceSpec(
    name="dam",
    title="DAM — data analysis & management",
    description="Upload with MD5 dedup, documents, labelling tasks, distribution analysis and group items into datasets.",
    settings_cls=Settings,
    migrations="dam.migrations",
    subscriptions=subscriptions,
    routers=lambda: [file_router, document_router, search_router, dataset_router, labelling_router, webhook_router,
                       conversion_router, quality_router],
    extra_lifespan=lifespan,
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
