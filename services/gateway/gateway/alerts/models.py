"""Alert rules, the alerts they open (one per rule and group key while it is open), what each alert sent
(`alert_notification`: one row per firing, repeat or resolution, which the e-mail job delivers), the samples a
counting rule keeps for its windows, and the function each badcase belongs to (badcase.merged does not carry it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, new_id, utcnow


class AlertRule(Base):
    __tablename__ = "alert_rule"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    function: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    group_by: Mapped[list[str]] = mapped_column(JSON, default=list)
    group_wait_seconds: Mapped[int] = mapped_column(Integer, default=30)
    repeat_interval_seconds: Mapped[int] = mapped_column(Integer, default=4 * 3600)
    resolve_after_seconds: Mapped[int] = mapped_column(Integer)
    email_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """pending (opened, waiting group_wait) → firing → resolved. `open_key` is set while the alert is not
    resolved and unique: concurrent events of one group find the one open alert instead of opening a second."""

    __tablename__ = "alert"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert_rule.id", ondelete="CASCADE"), index=True)
    open_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    group_key: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    function: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending | firing | resolved
    summary: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class AlertNotification(Base):
    """One firing, repeat or resolution of an alert: its event went out through the outbox with it; its e-mail
    (`email_status` pending → sent | failed, or off) is sent by the e-mail job, retried, each attempt counted."""

    __tablename__ = "alert_notification"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # firing | repeat | resolved
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    email_status: Mapped[str] = mapped_column(String(20))  # pending | sent | failed | off
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


Index("ix_alert_notification_due", AlertNotification.email_status, AlertNotification.next_attempt_at)


class AlertSample(Base):
    """One matching event of a counting rule (surge, failure with a threshold), kept for its windows."""

    __tablename__ = "alert_sample"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert_rule.id", ondelete="CASCADE"))
    group_key: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


Index("ix_alert_sample_window", AlertSample.rule_id, AlertSample.at)


class AlertBadcase(Base):
    """A badcase's function and model, from its badcase.created: badcase.merged names only the badcase."""

    __tablename__ = "alert_badcase"

    badcase_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    function: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
