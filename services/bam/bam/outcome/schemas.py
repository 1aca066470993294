import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class OutcomeRead(BaseModel):
    model_name: str
    model_version: str
    model_version_id: uuid.UUID | None = None
    task_id: uuid.UUID
    passed: bool
    prediction: Any
    recorded_at: datetime


class ModelVersionOutcome(BaseModel):
    model_name: str
    model_version: str
    model_version_id: uuid.UUID | None = None
    passed: bool = Field(description="The latest outcome of this badcase for that model version")
    tests: int
    last_tested_at: datetime
    production: bool = Field(False, description="The version is its function's production: the badcase's status "
                                                "follows this outcome")


class BadcaseOutcomes(BaseModel):
    badcase_id: uuid.UUID
    by_model_version: list[ModelVersionOutcome]
    history: list[OutcomeRead]
