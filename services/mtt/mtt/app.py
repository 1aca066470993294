from fastapi import FastAPI

from mlife_shared.app import ServiceSpec, create_app
from mtt.config import Settings

SPEC = ServiceSpec(
    name="mtt",
    title="MTT — model training & testing",
    description="Training and testing tasks with a Task ID, user code runners, the built-in ONNX evaluator and MLflow tracking.",
    settings_cls=Settings,
    migrations="mtt.migrations",
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
