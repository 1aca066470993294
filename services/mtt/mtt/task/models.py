from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow

KINDS = ("train", "test")
STATUSES = ("draft", "ready", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")


class Task(Base):
    """A training or testing task: datasets + code/command (or the built-in evaluator) + model, under a Task ID."""

    __tablename__ = "mtt_task"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), index=True, default="draft")
    owner: Mapped[str | None] = mapped_column(String(100), index=True)
    origin: Mapped[str] = mapped_column(String(40), default="api")
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    datasets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    function: Mapped[str | None] = mapped_column(String(200), index=True)
    set_kind: Mapped[str | None] = mapped_column(String(20))  # badcase_test_set / test_split / other (tests)
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    code_location: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queue: Mapped[str] = mapped_column(String(60), default="default")
    timeout_seconds: Mapped[float | None] = mapped_column()
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    runner_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(100))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(100))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    outcomes_key: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunRequest(Base):
    """Outbox-like row: a run of a task to put on the runners' work queue once its transaction commits."""

    __tablename__ = "mtt_run_request"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("mtt_task.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class GroupedDataset(Base):
    """Projection of DAM's `dataset.grouped`: which dataset versions exist, their function, and which is a
    function's badcase test set."""

    __tablename__ = "mtt_dataset"

    dataset_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(10))
    manifest_key: Mapped[str] = mapped_column(Text)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    is_badcase_test_set: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    function: Mapped[str | None] = mapped_column(String(200), index=True)
    modality: Mapped[str | None] = mapped_column(String(10))
    grouped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RegisteredModel(Base):
    """Projection of MSM's `model.registered`: the versions MTT can test."""

    __tablename__ = "mtt_model"

    model_version_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(40))
    object_key: Mapped[str] = mapped_column(Text)
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    function: Mapped[str | None] = mapped_column(String(200))
    test_dataset_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
