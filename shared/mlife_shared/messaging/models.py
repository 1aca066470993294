"""Backbone tables, present in every service's database."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class OutboxEvent(Base):
    """An event written in the same transaction as the change that causes it; the relay publishes it."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_outbox_unpublished", "seq", postgresql_where="published_at IS NULL",
              sqlite_where="published_at IS NULL"),
    )


class InboxEvent(Base):
    """An event a consumer has applied: `(consumer, event_id)` commits with the handler's effect."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadLetter(Base):
    """A message no handler could apply: malformed, unknown, or failing `max_deliver` times."""

    __tablename__ = "dead_letter"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    consumer: Mapped[str] = mapped_column(String(200), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(40), doc="malformed | unknown | failed")
    error: Mapped[str] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    stream_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Re-driving it (a maintainer, after a fix): when it was applied and by whom — the audit of the re-drive —
    # and the last failed attempt's error.
    redriven_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redriven_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    redrive_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    redrive_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    redrives: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
