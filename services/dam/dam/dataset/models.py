from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow

Purpose = Literal["train", "test"]
Modality = Literal["file", "table", "mixed"]


class Dataset(Base):
    """An immutable train or test dataset version frozen by "group items"; its manifest is in the store."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("name", "purpose", "version", name="uq_dataset_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    purpose: Mapped[Purpose] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest_key: Mapped[str] = mapped_column(String(1024))
    item_count: Mapped[int] = mapped_column(Integer)
    is_badcase_test_set: Mapped[bool] = mapped_column(Boolean, default=False)
    function: Mapped[str | None] = mapped_column(String(100), index=True)
    modality: Mapped[Modality | None] = mapped_column(String(10))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetItem(Base):
    """One item of a dataset by its identity: a file's MD5, or the hash of a table row's features and label."""

    __tablename__ = "dataset_item"

    dataset_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("dataset.id", ondelete="CASCADE"),
                                                  primary_key=True)
    md5: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    label: Mapped[str | None] = mapped_column(String(200))
