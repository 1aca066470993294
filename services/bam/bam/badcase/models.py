from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class Badcase(Base):
    """One failure, rare or long-tail case; every report of it is an Occurrence."""

    __tablename__ = "badcase"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    function: Mapped[str] = mapped_column(String(200), index=True)
    system_version: Mapped[str | None] = mapped_column(String(100), index=True)
    model_name: Mapped[str | None] = mapped_column(String(200), index=True)
    model_version: Mapped[str | None] = mapped_column(String(100), index=True)
    source: Mapped[str] = mapped_column(String(20), index=True)
    reporter: Mapped[str | None] = mapped_column(String(100))
    client_id: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    description_norm: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    data_refs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    data_md5: Mapped[str | None] = mapped_column(String(32), index=True)
    media_type: Mapped[str | None] = mapped_column(String(20), index=True)
    phash: Mapped[int | None] = mapped_column(BigInteger)
    prediction: Mapped[Any] = mapped_column(JSON, nullable=True)
    ground_truth: Mapped[Any] = mapped_column(JSON, nullable=True)
    prediction_label: Mapped[str | None] = mapped_column(String(200), index=True)
    ground_truth_label: Mapped[str | None] = mapped_column(String(200), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    match_key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default="new")
    severity: Mapped[str] = mapped_column(String(10), default="medium")
    priority: Mapped[float] = mapped_column(Float, index=True, default=0.0)
    priority_score: Mapped[float] = mapped_column(Float, default=0.0)
    priority_override: Mapped[float | None] = mapped_column(Float)
    owner: Mapped[str | None] = mapped_column(String(100), index=True)
    frequency: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fixed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    regressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    test_data_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    search_text: Mapped[str] = mapped_column(Text, default="")
    # Where it was found (the first report's): the testing task, the deployment, the model version (MSM's id).
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # a tabular badcase's row
    # Audio/video: when in the recording it happens (seconds and/or a frame range) and the recording's duration.
    # A merged report widens the segment to the union of the overlapping reports (see dedup.py).
    segment_start: Mapped[float | None] = mapped_column(Float)
    segment_end: Mapped[float | None] = mapped_column(Float)
    frame_start: Mapped[int | None] = mapped_column(Integer)
    frame_end: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    # A segmented badcase's fingerprint without its segment: reports sharing it and overlapping are one badcase.
    segment_base: Mapped[str | None] = mapped_column(String(64), index=True)
    data_stored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # data/<md5> in BAM


class OfBadcase:
    """A row about one badcase (a report, an outcome, a triage change): its own id and the badcase's, deleted with
    the badcase."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    badcase_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("badcase.id", ondelete="CASCADE"), index=True)


class BadcaseTag(Base):
    __tablename__ = "badcase_tag"

    badcase_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("badcase.id", ondelete="CASCADE"),
                                                  primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Occurrence(OfBadcase, Base):
    """One report of a badcase: who saw it, where, when, against which model."""

    __tablename__ = "occurrence"

    source: Mapped[str] = mapped_column(String(20))
    reporter: Mapped[str | None] = mapped_column(String(100))
    client_id: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(200))
    deployment_id: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    prediction: Mapped[Any] = mapped_column(JSON, nullable=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    segment_start: Mapped[float | None] = mapped_column(Float)  # this report's own segment, as it was sent
    segment_end: Mapped[float | None] = mapped_column(Float)
    frame_start: Mapped[int | None] = mapped_column(Integer)
    frame_end: Mapped[int | None] = mapped_column(Integer)


class Outcome(OfBadcase, Base):
    """How one model version did on one badcase in one testing task (kept as history)."""

    __tablename__ = "outcome"

    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    prediction: Mapped[Any] = mapped_column(JSON, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (Index("ix_outcome_model", "model_name", "model_version"),
                      Index("ix_outcome_model_version_id", "model_version_id"))


class TriageChange(OfBadcase, Base):
    """Who changed what on a badcase, and when (status, priority, owner, …)."""

    __tablename__ = "triage_change"

    actor: Mapped[str] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
