from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class QualityFinding(Base):
    """What a cleaner found on a row of a document version (the findings of the latest run over that version;
    an upload's findings live on the file row, `File.findings`)."""

    __tablename__ = "quality_finding"
    __table_args__ = (Index("ix_quality_finding_document_version", "document_id", "document_version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    document_version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    md5: Mapped[str | None] = mapped_column(String(32))
    cleaner: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    related: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QualityRun(Base):
    """The latest cleaner run over a document version: when, which cleaners, over how many rows (so "no findings"
    and "never checked" differ)."""

    __tablename__ = "quality_run"

    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    document_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    cleaners: Mapped[list[str]] = mapped_column(JSON, default=list)
    classes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    checked_count: Mapped[int] = mapped_column(Integer, default=0)
    ran_by: Mapped[str | None] = mapped_column(String(100))
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
