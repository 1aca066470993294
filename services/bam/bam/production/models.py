from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime


class ProductionVersion(Base):
    """A function's production model version (from `model.promoted`): the version badcase statuses follow.
    A row without a version is a function seen in testing before any promotion; the row is what a
    promotion and a testing result of the function lock, so the two never interleave."""

    __tablename__ = "production_version"

    function: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
