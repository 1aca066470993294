from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, new_id, utcnow


class Feedback(Base):
    """A client's report that a served prediction was wrong (sent on as `serving.feedback`)."""

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[uuid.UUID] = mapped_column()
    prediction_id: Mapped[uuid.UUID | None] = mapped_column()
    input_ref: Mapped[str | None] = mapped_column(String(1024))
    prediction: Mapped[Any] = mapped_column(JSON)
    correct_label: Mapped[Any] = mapped_column(JSON)
    client_id: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
