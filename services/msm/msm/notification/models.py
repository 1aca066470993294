from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import UTCDateTime, utcnow
from msm.columns import Prose, Record, Timestamp, Username


class WebhookSubscription(Record):
    __tablename__ = "webhook_subscription"

    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[Prose]
    created_by: Mapped[Username]
    created_at: Mapped[Timestamp]


class WebhookDelivery(Record):
    """One event for one subscription: written with the event, sent and retried by the dispatcher."""

    __tablename__ = "webhook_delivery"

    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_subscription.id", ondelete="CASCADE"),
                                                       index=True)
    event_id: Mapped[uuid.UUID] = mapped_column()
    subject: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    created_at: Mapped[Timestamp]
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
