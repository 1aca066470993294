"""Outside subscribers: a NATS login of their own (checked by the auth callout) and their durable consumers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mlife_shared.db import Base, UTCDateTime, utcnow


class Subscriber(Base):
    """One outside system. Its NATS password is random (256 bits) and stored as its SHA-256, as API tokens are."""

    __tablename__ = "subscriber"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    subjects: Mapped[list[str]] = mapped_column(JSON)  # the patterns asked for
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # applied by the SDK (NATS cannot)
    password_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    durables: Mapped[list[SubscriberDurable]] = relationship(lazy="raise", cascade="all, delete-orphan",
                                                             order_by="SubscriberDurable.stream")


class SubscriberDurable(Base):
    """One durable pull consumer of a subscriber: one per stream holding a subject it asked for."""

    __tablename__ = "subscriber_durable"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subscriber_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("subscriber.id", ondelete="CASCADE"),
                                                     index=True)
    stream: Mapped[str] = mapped_column(String(100))
    durable: Mapped[str] = mapped_column(String(200))
    filter_subjects: Mapped[list[str]] = mapped_column(JSON)


class SubscriberReplay(Base):
    """Audit: who re-positioned which subscriber's durables, when, and from where. Kept after the subscriber."""

    __tablename__ = "subscriber_replay"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subscriber_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    subscriber_name: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stream: Mapped[str | None] = mapped_column(String(100), nullable=True)
    sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
