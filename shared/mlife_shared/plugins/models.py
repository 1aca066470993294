"""`plugin_seen`: the plugins a service once had active, so that one whose package was removed is listed as
absent (with what it was) rather than silently gone. In the database of every service that hosts a seam."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class PluginSeen(Base):
    __tablename__ = "plugin_seen"

    seam: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    entry_point: Mapped[str] = mapped_column(String(300))
    distribution: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[str | None] = mapped_column(String(60), nullable=True)
    api: Mapped[str | None] = mapped_column(String(60), nullable=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
