from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, new_id, utcnow


class TestingResult(Base):
    """One `testing.completed`: the metrics of a model version on a dataset."""

    __tablename__ = "testing_result"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    task_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    dataset_id: Mapped[uuid.UUID | None] = mapped_column()
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    badcases: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BadcaseOutcome(Base):
    """The latest outcome of one badcase for one model version (from the badcase test set)."""

    __tablename__ = "badcase_outcome"
    __table_args__ = (UniqueConstraint("model_name", "model_version", "badcase_id",
                                       name="uq_badcase_outcome_model_name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    badcase_id: Mapped[uuid.UUID] = mapped_column()
    correct: Mapped[bool] = mapped_column(Boolean)
    task_id: Mapped[uuid.UUID] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
