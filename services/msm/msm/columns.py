"""The column shapes MSM's tables repeat, written once (SQLAlchemy's `Annotated` type map): `id: Mapped[Id]`
is the uuid primary key, `created_at: Mapped[Timestamp]` a UTC time set on insert."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, new_id, utcnow

Id = Annotated[uuid.UUID, mapped_column(primary_key=True, default=new_id, sort_order=-1)]  # first, as in the migrations
Timestamp = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow)]
Username = Annotated[str, mapped_column(String(100))]
DeploymentRef = Annotated[uuid.UUID, mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"), index=True)]
ModelRef = Annotated[uuid.UUID, mapped_column(ForeignKey("registered_model.id", ondelete="CASCADE"), index=True)]
Prose = Annotated[str, mapped_column(Text, default="")]
Tags = Annotated[list[str], mapped_column(JSON, default=list)]
JsonObject = Annotated[dict[str, Any], mapped_column(JSON, default=dict)]
Metrics = Annotated[dict[str, float], mapped_column(JSON, default=dict)]


class Record(Base):
    """A table whose rows are known by a uuid `id` (every MSM table but the per-function thresholds)."""

    __abstract__ = True

    id: Mapped[Id]
