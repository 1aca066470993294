from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base, UTCDateTime, utcnow

BADCASE_TEST_SET = "badcase test set"
TABLE = "table"


def badcase_test_set_name(function: str) -> str:
    """The standing document (and the datasets frozen from it) of one function's badcase test set."""
    return f"{BADCASE_TEST_SET}: {function}"


class Document(Base):
    """A manifest of files and their annotations; every change is a new DocumentVersion."""

    __tablename__ = "document"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(30), default="standard")
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    function: Mapped[str | None] = mapped_column(String(100), index=True)
    label_column: Mapped[str | None] = mapped_column(String(64))
    feature_columns: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentVersion(Base):
    """One version of a document. A version written whole holds its own rows (`since` is None or itself); an
    appended one (the badcase test set's) holds the rows added by versions `since`..itself that no version up
    to it retired: appending writes the new rows only."""

    __tablename__ = "document_version"
    __table_args__ = (UniqueConstraint("document_id", "version", name="uq_document_version_document_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("document.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    since: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentRow(Base):
    """One row, added by one version (and part of the versions appended after it until one retires it): a file
    (by MD5) or a row of feature columns (a plain table), its annotation and extra columns."""

    __tablename__ = "document_row"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("document_version.id", ondelete="CASCADE"),
                                                  index=True)
    position: Mapped[int] = mapped_column(Integer)
    md5: Mapped[str | None] = mapped_column(String(32), index=True)
    path: Mapped[str | None] = mapped_column(String(1024))
    annotation: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), index=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    search_text: Mapped[str] = mapped_column(Text, default="")
    retired_in: Mapped[int | None] = mapped_column(Integer, nullable=True)
