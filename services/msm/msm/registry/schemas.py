from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.names import FunctionName
from msm.inputs import StrictIn


class _In(StrictIn):
    pass


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class VersionImport(_In):
    source_key: str = Field(description="Object key in MLife's store (e.g. mtt/models/…/model.onnx); no URLs")
    metrics: dict[str, float] = {}
    tags: list[str] = Field([], max_length=50)
    description: str = Field("", max_length=10_000)


class VersionUpdate(_In):
    description: str | None = Field(None, max_length=10_000)
    tags: list[str] | None = Field(None, max_length=50)
    metrics: dict[str, float] | None = None
    test_dataset_ids: list[uuid.UUID] | None = Field(None, max_length=20,
                                                     description="The test split(s) the gate requires results on")


class ModelUpdate(_In):
    description: str | None = Field(None, max_length=10_000)
    tags: list[str] | None = Field(None, max_length=50)
    function: FunctionName | None = Field(None,
                                 description="The function the model serves (required before a deployment)")


class AliasMove(_In):
    alias: str = Field(max_length=100)
    version: str = Field(description="Version number, version id, or another alias", max_length=100)
    reason: str = Field("", max_length=2000)


class AliasRevert(_In):
    reason: str = Field("", max_length=2000)


class CompressRequest(_In):
    evaluate_on_dataset_id: uuid.UUID | None = Field(
        None, description="MTT tests both versions on this dataset; the delta is recorded when both results arrive")
    sample: dict[str, Any] | None = Field(
        None, description="Optional quick check: {'inputs': {name: rows}, 'labels': [class index per row]}")


class DockerBuild(_In):
    tag: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,128})?$")


class VersionRead(_Out):
    id: uuid.UUID
    name: str
    version: str
    format: str
    object_key: str
    size: int
    md5: str
    servable: bool
    source: str
    task_id: uuid.UUID | None
    parent_version_id: uuid.UUID | None
    metrics: dict[str, float]
    tags: list[str]
    description: str
    lineage: dict[str, Any]
    signature: dict[str, Any]
    test_dataset_ids: list[uuid.UUID]
    created_by: str
    created_at: datetime


class TestingSummary(BaseModel):
    task_id: uuid.UUID
    dataset_id: uuid.UUID | None
    set_kind: str
    model_version_id: uuid.UUID | None
    metrics: dict[str, float]
    samples: int
    passed: int
    badcases: int
    created_at: datetime


class CompressionRead(_Out):
    id: uuid.UUID
    source_version_id: uuid.UUID
    compressed_version_id: uuid.UUID
    method: str
    dataset_id: uuid.UUID | None
    size_before: int
    size_after: int
    metric_delta: dict[str, float] | None
    sample_delta: dict[str, Any] | None
    measured_at: datetime | None
    waiting_for: list[str] = Field([], description="Versions whose MTT result on the dataset is still missing")


class GateCheck(BaseModel):
    passed: bool
    awaiting: bool = Field(description="Evidence is missing (see `evidence`); a deployment request would wait for it")
    function: str
    reasons: list[str]
    regressed_badcases: list[str]
    untested_badcases: list[str]
    failing_badcases: list[str]
    thresholds: dict[str, Any]
    evidence: list[dict[str, Any]] = Field(
        description="Each (version, dataset) the gate needs: done | pending | failed")
    badcase_test_set_id: uuid.UUID | None
    production_version_id: uuid.UUID | None
    versions: list[dict[str, Any]]


class VersionDetail(VersionRead):
    aliases: list[str] = []
    testing: list[TestingSummary] = []
    badcase_outcomes: dict[str, int] = Field({}, description="passed / failed badcases of the badcase test set")
    compression: CompressionRead | None = None


class AliasRead(BaseModel):
    alias: str
    version_id: uuid.UUID
    version: str
    updated_at: datetime


class AliasChangeRead(_Out):
    id: uuid.UUID
    alias: str
    from_version_id: uuid.UUID | None
    to_version_id: uuid.UUID | None
    actor: str
    reason: str
    created_at: datetime


class ModelRead(_Out):
    id: uuid.UUID
    name: str
    function: str | None
    description: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class ModelDetail(ModelRead):
    aliases: list[AliasRead]
    versions: list[VersionRead]


class CompressResult(BaseModel):
    version: VersionRead
    compression: CompressionRead
