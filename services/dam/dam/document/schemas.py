from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

StatisticsQuery = Annotated[list[str] | None, Query(
    max_length=50, description="Run only these statistics plugins (default: every active one; GET /plugins)")]


class RowFilter(BaseModel):
    """Which rows: by annotation (class label), extra columns, file type and size, or keywords."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] | None = Field(None, description="Class labels to keep")
    has_annotation: bool | None = None
    media_types: list[str] | None = Field(None, description="image, audio, video, text, json, ...")
    min_size: int | None = Field(None, ge=0, le=2**62)
    max_size: int | None = Field(None, ge=0, le=2**62)
    columns: dict[str, str | list[str]] | None = Field(None, description="Extra or feature column → value or one of "
                                                                           "values")
    q: str | None = Field(None, max_length=200, description="Keywords in path, annotation and extra columns")
    md5s: list[str] | None = None


class VersionRead(BaseModel):
    version: int
    row_count: int
    message: str
    created_by: str | None
    created_at: datetime


class DocumentRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    kind: str = Field(description="standard (rows name files), table (rows of features and a label) or "
                                  "badcase test set")
    columns: list[str] = Field(description="The extra columns")
    function: str | None = Field(None, description="The function whose badcase test set this is")
    label_column: str | None = Field(None, description="A plain table's label column")
    feature_columns: list[str] = Field([], description="A plain table's feature columns (for a badcase test set: "
                                                       "every feature its tabular badcases have)")
    current_version: int
    row_count: int
    created_at: datetime
    updated_at: datetime


class RowRead(BaseModel):
    id: uuid.UUID
    document_id: uuid.UUID | None = None
    document_version: int | None = None
    position: int
    md5: str | None
    path: str | None
    annotation: Any
    label: str | None
    extra: dict[str, Any]
    features: dict[str, Any] | None = Field(None, description="A table row's feature columns (no file)")
    media_type: str | None
    size: int | None
    width: int | None
    height: int | None


class RowPage(BaseModel):
    items: list[RowRead]
    total: int


class SearchRequest(RowFilter):
    document_ids: list[uuid.UUID] | None = Field(None, description="Search these documents (default: all)")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class ClassCount(BaseModel):
    label: str
    a: int
    b: int
    delta: int


class Comparison(BaseModel):
    a: dict[str, Any]
    b: dict[str, Any]
    classes: list[ClassCount]
    added_count: int
    removed_count: int
    changed_count: int = Field(description="Files in both whose annotation differs")
    added: list[str] = Field(description="MD5s (or table row hashes) in b and not in a (first 1000)")
    removed: list[str] = Field(description="MD5s in a and not in b (first 1000)")
    changed: list[str]
