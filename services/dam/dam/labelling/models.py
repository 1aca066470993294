from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow


class LabellingTask(Base):
    """Rows of one document version sent for labelling; completed into a new version of the document."""

    __tablename__ = "labelling_task"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    document_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    label_config: Mapped[str] = mapped_column(Text)
    prelabel_source: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    items_key: Mapped[str] = mapped_column(String(1024))
    connector: Mapped[str | None] = mapped_column(String(100))  # the labelling plugin; None: annotations by API only
    external_project: Mapped[str | None] = mapped_column(String(200))  # the tool's project id
    completed_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LabellingItem(Base):
    __tablename__ = "labelling_item"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("labelling_task.id", ondelete="CASCADE"), index=True)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer)
    md5: Mapped[str | None] = mapped_column(String(32))
    prelabel: Mapped[Any] = mapped_column(JSON, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)  # the tool's task id
    annotation: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    annotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
