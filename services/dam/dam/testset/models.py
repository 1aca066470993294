from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class TestDataConversion(Base):
    """How the audio/video badcases of one function are converted when they join its badcase test set
    (`ConversionSettings` as JSON); a function without a row takes the defaults."""

    __tablename__ = "test_data_conversion"
    __test__ = False  # not a pytest class

    function: Mapped[str] = mapped_column(String(100), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
