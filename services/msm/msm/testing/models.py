from __future__ import annotations

import uuid

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from msm.columns import Metrics, Prose, Record, Timestamp


class TestingResult(Record):
    """One `testing.completed`: the metrics of a model version on a dataset."""

    __tablename__ = "testing_result"

    task_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    dataset_id: Mapped[uuid.UUID | None] = mapped_column()
    set_kind: Mapped[str] = mapped_column(String(20), default="other")  # badcase_test_set | test_split | other
    function: Mapped[str | None] = mapped_column(String(200))
    metrics: Mapped[Metrics]
    samples: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    badcases: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[Timestamp]


class TestingFailure(Record):
    """One `testing.failed`: a model version could not be tested on a dataset (incompatible, or the run
    failed). The gate blocks on it unless a later result on the same dataset replaced it."""

    __tablename__ = "testing_failure"

    task_id: Mapped[uuid.UUID | None] = mapped_column()
    model_version_id: Mapped[uuid.UUID] = mapped_column(index=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column()
    set_kind: Mapped[str] = mapped_column(String(20), default="other")
    incompatible: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[Prose]
    created_at: Mapped[Timestamp]


class BadcaseTestSet(Record):
    """A badcase test set version DAM froze (`dataset.grouped`, is_badcase_test_set): the latest one of a
    function is that function's current badcase test set."""

    __tablename__ = "badcase_test_set"

    dataset_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    function: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str | None] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    grouped_at: Mapped[Timestamp]


class BadcaseOutcome(Record):
    """The latest outcome of one badcase for one model version (from the badcase test set)."""

    __tablename__ = "badcase_outcome"
    __table_args__ = (UniqueConstraint("model_name", "model_version", "badcase_id",
                                       name="uq_badcase_outcome_model_name"),)

    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    badcase_id: Mapped[uuid.UUID] = mapped_column()
    correct: Mapped[bool] = mapped_column(Boolean)
    task_id: Mapped[uuid.UUID] = mapped_column()
    updated_at: Mapped[Timestamp]
