from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlife_shared.names import FunctionName
from mlife_shared.plugins.seams.deploy_targets import TARGET_NAME_PATTERN
from msm.inputs import StrictIn


class _In(StrictIn):
    pass


class VersionRoute(_In):
    model_version_id: uuid.UUID
    weight: float = Field(1.0, ge=0, le=1_000_000)
    role: Literal["primary", "shadow"] = "primary"


class Bound(_In):
    # strict: `false` is not a bound of 0 (lax mode would take a boolean as a number)
    min: float | None = Field(None, strict=True)
    max: float | None = Field(None, strict=True)


MetricType = Literal["string", "number", "integer", "boolean"]


class DeploymentCreate(_In):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$", description="Endpoint name: /serve/{name}/predict")
    function: FunctionName | None = Field(None,
                                 description="Optional check: the function of the primary versions' model (which "
                                             "the deployment serves); a different value is refused")
    target: str = Field("local", pattern=TARGET_NAME_PATTERN,
                        description="The deploy target (a deploy_targets plugin, GET /api/msm/plugins): `local` (served "
                                    "here), `docker` (build context), `edge` (package) or an installed one")
    routing: Literal["single", "ab", "shadow"] = "single"
    versions: list[VersionRoute] = Field(min_length=1, max_length=10)
    thresholds: dict[str, Bound] = Field(
        {}, max_length=50,
        description="`<set>.<metric>` → {min, max}, the set being `test_split` or `badcase_test_set` (a bare metric "
                    "means test_split); none given: the function's defaults")
    metrics_schema: dict[str, MetricType] = Field({}, max_length=50,
                                                  description="User metrics: name → type (client_id: string, …)")
    badcases: list[uuid.UUID] = Field([], max_length=10_000, description="Badcases attached by hand")
    override_reason: str | None = Field(None, min_length=3, max_length=2000,
                                        description="Maintainers only: deploy even if the gate blocks, with this reason")

    @model_validator(mode="after")
    def _routing(self) -> DeploymentCreate:
        primaries = [v for v in self.versions if v.role == "primary"]
        shadows = [v for v in self.versions if v.role == "shadow"]
        if len({v.model_version_id for v in self.versions}) != len(self.versions):
            raise ValueError("a version appears twice")
        if self.routing == "single" and (len(primaries) != 1 or shadows):
            raise ValueError("single routing takes exactly one primary version")
        if self.routing == "ab" and (len(primaries) < 2 or shadows or any(v.weight <= 0 for v in primaries)):
            raise ValueError("ab routing takes two or more primary versions with positive weights")
        if self.routing == "shadow" and (len(primaries) != 1 or not shadows):
            raise ValueError("shadow routing takes one primary version and one or more shadow versions")
        check_thresholds(self.thresholds)
        return self


def check_thresholds(thresholds: dict[str, Bound]) -> None:
    for metric, bound in thresholds.items():
        if not metric.strip():
            raise ValueError("a threshold needs a metric name")
        if bound.min is None and bound.max is None:
            raise ValueError(f"threshold {metric!r} needs min or max")
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            raise ValueError(f"threshold {metric!r}: min {bound.min:g} is above max {bound.max:g}, nothing can pass")


class FunctionThresholdsUpdate(_In):
    """`{"thresholds": {"test_split.accuracy": {"min": 0.95}}}` (an empty mapping clears the defaults)."""

    thresholds: dict[str, Bound] = Field(max_length=50)

    @model_validator(mode="after")
    def _check(self) -> FunctionThresholdsUpdate:
        check_thresholds(self.thresholds)
        return self


class FunctionThresholdsRead(BaseModel):
    function: str
    thresholds: dict[str, Any]
    updated_by: str | None = None
    updated_at: datetime | None = None


class OverrideRequest(_In):
    reason: str = Field(min_length=3, max_length=2000)


class RollbackRequest(_In):
    reason: str = Field("", max_length=2000)


class BadcaseAttach(_In):
    badcase_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)
    note: str = Field("", max_length=2000)


class MetricValues(_In):
    values: dict[str, Any] = Field(min_length=1, max_length=50)


class ChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    status: str
    actor: str
    detail: str
    created_at: datetime


class BadcaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    badcase_id: uuid.UUID
    source: str
    note: str
    created_at: datetime


class MetricRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    values: dict[str, Any]
    created_at: datetime


class DeploymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    function: str | None
    target: str
    routing: str
    versions: list[dict[str, Any]]
    status: str
    thresholds: dict[str, Any]
    gate: dict[str, Any]
    overridden: bool
    override_reason: str | None
    override_by: str | None
    metrics_schema: dict[str, str]
    previous_deployment_id: uuid.UUID | None
    artifact_key: str | None
    failure_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DeploymentDetail(DeploymentRead):
    history: list[ChangeRead] = []
    badcases: list[BadcaseRead] = []
