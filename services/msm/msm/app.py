from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Histogram

from mlife_shared.app import ServiceContext, ServiceSpec, create_app
from mlife_shared.events.contracts import (
    DatasetGrouped,
    DeploymentRequested,
    ModelUploaded,
    TestingCompleted,
    TestingFailed,
)
from mlife_shared.messaging.consumer import Subscription
from msm.config import Settings
from msm.deployment import models as _deployment_models  # noqa: F401 - the tables, for migrations
from msm.deployment.consumers import on_deployment_requested
from msm.deployment.router import router as deployment_router
from msm.registry import models as _registry_models  # noqa: F401
from msm.registry.consumers import on_model_uploaded
from msm.registry.docker import SdkDockerEngine
from msm.registry.router import router as registry_router
from msm.serving import lane as predict_lane
from msm.serving import models as _serving_models  # noqa: F401
from msm.serving.router import router as serving_router
from msm.serving.runtime import ServingRegistry
from msm.testing import models as _testing_models  # noqa: F401
from msm.testing.consumers import on_dataset_grouped, on_testing_completed, on_testing_failed


def subscriptions(ctx: ServiceContext[Settings]) -> list[Subscription]:
    return [
        Subscription.of(ModelUploaded, on_model_uploaded, ctx, ack_wait_seconds=300),
        Subscription.of(TestingCompleted, on_testing_completed, ctx, ack_wait_seconds=120),
        Subscription.of(TestingFailed, on_testing_failed, ctx),
        Subscription.of(DatasetGrouped, on_dataset_grouped, ctx),
        Subscription.of(DeploymentRequested, on_deployment_requested, ctx, ack_wait_seconds=300),
    ]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    serving = ServingRegistry(app.state.db, settings, app.state.raw_store)
    serving.histogram = Histogram("mlife_msm_predict_seconds", "Predict latency per deployment and version",
                                  ["deployment", "version"], registry=app.state.metrics.registry,
                                  buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
    app.state.serving = serving
    app.state.docker_engine = SdkDockerEngine(settings.docker_host) if settings.docker_host else None
    try:
        yield
    finally:
        await serving.close()


SPEC = ServiceSpec(
    name="msm",
    title="MSM — model serving & management",
    description="Model registry, gated deployments, ONNX serving with feedback, Docker build contexts and compression.",
    settings_cls=Settings,
    migrations="msm.migrations",
    subscriptions=subscriptions,
    # The serving routes first: FastAPI matches routes in order, and predict is the hot path.
    routers=lambda: [serving_router, registry_router, deployment_router],
    extra_lifespan=lifespan,
    customize=predict_lane.install,  # predict answered in front of the router (msm.serving.lane)
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
