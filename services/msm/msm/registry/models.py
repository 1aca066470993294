from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import UTCDateTime
from msm.columns import JsonObject, Metrics, ModelRef, Prose, Record, Tags, Timestamp, Username


class RegisteredModel(Record):
    """A model by name: the function it serves, and the number its next version gets."""

    __tablename__ = "registered_model"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    function: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[Prose]
    tags: Mapped[Tags]
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class ModelVersion(Record):
    """One registered artifact of a model, numbered 1, 2, … within it: where it is stored, its ONNX signature,
    where it came from (lineage) and the test splits the gate needs its results on."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version_model_id_version"),)

    model_id: Mapped[ModelRef]
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(50))
    format: Mapped[str] = mapped_column(String(20))
    object_key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    servable: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20))  # upload | mtt | compression | import
    task_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    parent_version_id: Mapped[uuid.UUID | None] = mapped_column()
    metrics: Mapped[Metrics]
    tags: Mapped[Tags]
    description: Mapped[Prose]
    lineage: Mapped[JsonObject]
    signature: Mapped[JsonObject]
    # The test split(s) grouped with its training data (model.uploaded): the gate's evidence besides the
    # function's badcase test set. Strings: JSON has no UUID.
    test_dataset_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[Username]
    created_at: Mapped[Timestamp]


class ModelAlias(Record):
    """A name (`production`, `staging`, …) pointing at one version of a model; every move is an AliasChange."""

    __tablename__ = "model_alias"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_alias_model_id_alias"),)

    model_id: Mapped[ModelRef]
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"))
    updated_at: Mapped[Timestamp]


class AliasChange(Record):
    """Every alias move: who, when, why, from which version to which."""

    __tablename__ = "alias_change"

    model_id: Mapped[ModelRef]
    alias: Mapped[str] = mapped_column(String(100))
    from_version_id: Mapped[uuid.UUID | None] = mapped_column()
    to_version_id: Mapped[uuid.UUID | None] = mapped_column()
    actor: Mapped[Username]
    reason: Mapped[Prose]
    created_at: Mapped[Timestamp]


class Compression(Record):
    """A compressed version and the accuracy delta measured on a dataset (once both versions were tested)."""

    __tablename__ = "compression"

    source_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"))
    compressed_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"),
                                                             unique=True)
    method: Mapped[str] = mapped_column(String(50))
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    size_before: Mapped[int] = mapped_column(BigInteger)
    size_after: Mapped[int] = mapped_column(BigInteger)
    metric_delta: Mapped[dict[str, float] | None] = mapped_column(JSON)
    sample_delta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    measured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[Timestamp]
