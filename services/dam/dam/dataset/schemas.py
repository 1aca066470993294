from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dam.document.schemas import RowFilter

Purpose = Literal["train", "test"]


class DocumentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    version: int | None = Field(None, ge=1, description="Default: the current version")


class GroupRequest(BaseModel):
    """Group items: documents + filters + split → immutable train/test dataset versions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    documents: list[DocumentRef] = Field(min_length=1, max_length=100)
    filter: RowFilter = RowFilter()
    split: dict[Purpose, float] = Field(default_factory=lambda: {"train": 0.8, "test": 0.2},
                                        description="Ratios per purpose; they add up to 1")
    stratify: bool = Field(True, description="Split each class by the ratios")
    seed: int = 0

    @model_validator(mode="after")
    def _ratios(self) -> "GroupRequest":
        if not self.split or any(r <= 0 for r in self.split.values()):
            raise ValueError("split ratios must be positive, e.g. {\"train\": 0.8, \"test\": 0.2}")
        if abs(sum(self.split.values()) - 1.0) > 1e-6:
            raise ValueError("split ratios must add up to 1")
        return self


class DatasetRead(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    name: str
    purpose: Purpose
    version: int
    item_count: int
    manifest_key: str
    is_badcase_test_set: bool
    spec: dict[str, Any]
    created_by: str | None
    created_at: datetime


class Leakage(BaseModel):
    train: uuid.UUID
    test: uuid.UUID
    shared_count: int
    shared: list[str] = Field(description="MD5s present in both (first 1000)")


class GroupRead(BaseModel):
    group_id: uuid.UUID
    datasets: list[DatasetRead]
    leakage: Leakage | None
    duplicates_dropped: int = Field(description="Rows whose content was already selected (same MD5)")
