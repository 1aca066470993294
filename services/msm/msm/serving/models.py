from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from msm.columns import DeploymentRef, Record, Timestamp


class Feedback(Record):
    """A client's report that a served prediction was wrong (sent on as `serving.feedback`)."""

    __tablename__ = "feedback"

    deployment_id: Mapped[DeploymentRef]
    model_version_id: Mapped[uuid.UUID] = mapped_column()
    prediction_id: Mapped[uuid.UUID | None] = mapped_column()
    input_ref: Mapped[str | None] = mapped_column(String(1024))
    prediction: Mapped[Any] = mapped_column(JSON)
    correct_label: Mapped[Any] = mapped_column(JSON)
    client_id: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
