from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dam.dataset.models import Modality, Purpose
from dam.document.schemas import RowFilter
from mlife_shared.bounds import INT32_MAX, INT64_MAX, INT64_MIN
from mlife_shared.names import FunctionName

_TRAIN_TEST: dict[Purpose, float] = {"train": 0.8, "test": 0.2}


class DocumentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    version: int | None = Field(None, ge=1, le=INT32_MAX, description="Default: the current version")


class GroupRequest(BaseModel):
    """Group items: documents + filters + split → immutable train/test dataset versions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    documents: list[DocumentRef] = Field(min_length=1, max_length=100)
    filter: RowFilter = RowFilter()
    split: dict[Purpose, float] = Field(default_factory=lambda: _TRAIN_TEST.copy(),
                                        description="Ratios per purpose; they add up to 1")
    stratify: bool = Field(True, description="Split each class by the ratios")
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    exclude_badcase_test_set: bool = Field(False, description="Leave out the items that are in the current badcase "
                                                              "test set of the function (every function's when "
                                                              "none is given), so nothing leaks")
    function: FunctionName | None = Field(None,
                                 description="The function the data is for (→ `dataset.grouped.function`); a badcase "
                                             "test set's is its document's. Leakage is checked against this "
                                             "function's current badcase test set (every function's when not given)")

    @model_validator(mode="after")
    def _ratios(self) -> GroupRequest:
        if not self.split or any(r <= 0 for r in self.split.values()):
            raise ValueError("split ratios must be positive, e.g. {\"train\": 0.8, \"test\": 0.2}")
        if abs(sum(self.split.values()) - 1.0) > 1e-6:
            raise ValueError("split ratios must add up to 1")
        return self


class Leakage(BaseModel):
    train: uuid.UUID
    test: uuid.UUID
    shared_count: int
    shared: list[str] = Field(description="MD5s (or table row hashes) present in both (first 1000)")


class LeakedInto(BaseModel):
    dataset_id: uuid.UUID
    name: str
    version: int
    function: str | None
    count: int


class BadcaseLeakage(BaseModel):
    """Train items that are also in a badcase test set: the model would be tested on what it learnt."""

    function: str | None = Field(description="The function whose current badcase test set was checked; none: every "
                                              "function's")
    count: int = Field(description="Train items (by MD5 or table row hash) also in the badcase test set")
    excluded: int = Field(0, description="Items left out by `exclude_badcase_test_set`")
    examples: list[str] = Field(description="A few of them (MD5s or row hashes)")
    badcase_test_sets: list[LeakedInto] = Field(description="The current badcase test sets checked, with the count "
                                                            "each shares")
    warning: str | None = Field(description="What it means and what to do; none when nothing leaks")


class DatasetRead(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    name: str
    purpose: Purpose
    version: int
    item_count: int
    manifest_key: str
    is_badcase_test_set: bool
    function: str | None = Field(None, description="The function the data is for")
    modality: Modality | None = Field(None, description="file, table (rows of features) or mixed")
    spec: dict[str, Any]
    created_by: str | None
    created_at: datetime
    leakage: BadcaseLeakage | None = Field(None, description="A train dataset (one dataset's read only): its items "
                                                             "that are in the current badcase test set of its function")


class GroupRead(BaseModel):
    group_id: uuid.UUID
    datasets: list[DatasetRead]
    leakage: BadcaseLeakage | None = Field(description="Train items also in the function's current badcase test set "
                                                       "(none when the grouping has no train split)")
    split_overlap: Leakage | None = Field(description="Content in both this grouping's train and test datasets")
    duplicates_dropped: int = Field(description="Rows whose content was already selected (same MD5 or row hash)")
    modality: Modality = Field(description="file, table or mixed")
