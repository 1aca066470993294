from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field


class Report(BaseModel):
    task_id: uuid.UUID
    kind: str
    status: str
    model: dict[str, Any] | None
    function: str | None = None
    set_kind: str | None = Field(None, description="A test task's set: badcase_test_set, test_split or other")
    model_version_id: uuid.UUID | None = None
    error: str | None = Field(None, description="Why the task failed (`incompatible: …` when the model cannot take "
                                                "the set)")
    metrics: dict[str, float]
    classes: list[str] = []
    confusion: list[list[int]] = []
    per_class: dict[str, dict[str, float]] = {}
    most_confused: list[dict[str, Any]] = []
    weakest_classes: list[dict[str, Any]] = []
    comparison: dict[str, Any] | None = None
    mlflow_url: str | None = None
