"""What one run produced, and how it can fail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from mlife_shared.events.contracts import ModelUploaded


class RunFailed(Exception):
    pass


class Incompatible(RunFailed):
    """The model cannot take the set's items: found before any run."""


@dataclass
class RunResult:
    status: str = "succeeded"
    error: str | None = None
    exit_code: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    outcomes_key: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    models: list[ModelUploaded] = field(default_factory=list)
    dataset_id: uuid.UUID | None = None
    incompatible: bool = False
