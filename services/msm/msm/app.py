from fastapi import FastAPI

from mlife_shared.app import ServiceSpec, create_app
from msm.config import Settings

SPEC = ServiceSpec(
    name="msm",
    title="MSM — model serving & management",
    description="Model registry, gated deployments, ONNX serving with feedback, Docker build contexts and compression.",
    settings_cls=Settings,
    migrations="msm.migrations",
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
