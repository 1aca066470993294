"""Rules, their per-kind parameters, alerts and notifications as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mlife_shared.bounds import INT32_MAX
from mlife_shared.names import FunctionName

Kind = Literal["critical_badcase", "badcase_frequency", "badcase_surge", "regression", "deployment", "failure"]
Severity = Literal["info", "warning", "critical"]
Label = Literal["function", "model_name", "model_version", "badcase_id", "deployment_id", "task_id", "subject",
                "source"]
AlertStatus = Literal["pending", "firing", "resolved"]
Seconds = Annotated[int, Field(ge=0, le=90 * 86400)]
Window = Annotated[int, Field(ge=1, le=90 * 86400, description="seconds")]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254,
                                         pattern=r"^[^@\s<>,;\x00-\x1f]+@[^@\s<>,;\x00-\x1f]+\.[^@\s<>,;\x00-\x1f]+$")]
RuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CriticalBadcaseParams(_Params):
    """A new badcase whose priority is at least `min_priority`. BAM's priority of a new badcase is
    10 × function weight × severity factor (critical 4, high 2, medium 1, low 0.5): 40 is a fresh critical one
    of a function of weight 1."""

    min_priority: float = Field(40.0, ge=0, le=1_000_000)


class BadcaseFrequencyParams(_Params):
    """A badcase seen again (badcase.merged) whose frequency has reached `threshold`; the alert stays firing
    while it keeps recurring and resolves after `window_seconds` without a new occurrence."""

    threshold: int = Field(10, ge=2, le=INT32_MAX)
    window_seconds: Window = 86400


class BadcaseSurgeParams(_Params):
    """New badcases (badcase.created) in the last `window_seconds` reach `min_count` and exceed `factor` × the
    mean count of the `baseline_windows` windows before it."""

    window_seconds: Window = 3600
    baseline_windows: int = Field(24, ge=1, le=1000)
    factor: float = Field(3.0, ge=1, le=1000)
    min_count: int = Field(10, ge=1, le=INT32_MAX)


class RegressionParams(_Params):
    """The gate blocked a deployment because a requested version gets at least `min_regressed` badcases
    wrong that production had fixed (deployment.blocked with regressed_badcases)."""

    min_regressed: int = Field(1, ge=1, le=INT32_MAX)


class DeploymentParams(_Params):
    """A deployment was blocked by its gate or failed to come up."""

    events: list[Literal["deployment.blocked", "deployment.failed"]] = Field(
        ["deployment.blocked", "deployment.failed"], min_length=1, max_length=2)


class FailureParams(_Params):
    """At least `threshold` failures (of the chosen events) in one group within `window_seconds`."""

    threshold: int = Field(1, ge=1, le=INT32_MAX)
    window_seconds: Window = 300
    events: list[Literal["task.failed", "testing.failed", "deployment.failed"]] = Field(
        ["task.failed", "testing.failed", "deployment.failed"], min_length=1, max_length=3)


PARAMS: dict[str, type[_Params]] = {
    "critical_badcase": CriticalBadcaseParams, "badcase_frequency": BadcaseFrequencyParams,
    "badcase_surge": BadcaseSurgeParams, "regression": RegressionParams, "deployment": DeploymentParams,
    "failure": FailureParams,
}
DEFAULT_GROUP_BY: dict[str, list[str]] = {
    "critical_badcase": ["function"], "badcase_frequency": ["function", "badcase_id"],
    "badcase_surge": ["function"], "regression": ["function", "deployment_id"],
    "deployment": ["function", "deployment_id"], "failure": ["function", "model_name", "model_version"],
}
DEFAULT_RESOLVE_AFTER = 3600  # kinds without a window of their own


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: RuleName
    kind: Kind
    function: FunctionName | None = Field(None, description="The ML system function it watches; null: every function")
    params: dict[str, Any] = Field(default_factory=dict, description="Per kind (see each kind's parameters)")
    severity: Severity = "warning"
    group_by: list[Label] | None = Field(None, max_length=8, description="Labels one alert groups by "
                                         "(default per kind, e.g. function,model_version for failures)")
    group_wait_seconds: Seconds = 30
    repeat_interval_seconds: Annotated[int, Field(ge=60, le=90 * 86400)] = 4 * 3600
    resolve_after_seconds: Window | None = Field(None, description="Quiet time after which the condition counts "
                                                 "as cleared and the alert resolves (default: the kind's window, "
                                                 "1 hour for kinds without one)")
    email_to: list[Email] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class AlertRuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: RuleName | None = None
    params: dict[str, Any] | None = None
    severity: Severity | None = None
    group_by: list[Label] | None = Field(None, max_length=8)
    group_wait_seconds: Seconds | None = None
    repeat_interval_seconds: Annotated[int, Field(ge=60, le=90 * 86400)] | None = None
    resolve_after_seconds: Window | None = None
    email_to: list[Email] | None = Field(None, max_length=50)
    enabled: bool | None = None


class AlertRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: Kind
    function: str | None
    params: dict[str, Any]
    severity: Severity
    group_by: list[str]
    group_wait_seconds: int
    repeat_interval_seconds: int
    resolve_after_seconds: int
    email_to: list[str]
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    email: str = Field("", description="Whether e-mail goes out: 'on', or why it is off")


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule_id: uuid.UUID
    group_key: str
    labels: dict[str, str]
    function: str | None
    status: AlertStatus
    summary: str
    count: int
    started_at: datetime
    last_event_at: datetime
    fired_at: datetime | None
    last_notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    rule_name: str = ""
    kind: str = ""
    severity: str = ""


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Literal["firing", "repeat", "resolved"]
    created_at: datetime
    subject: str
    recipients: list[str]
    email_status: Literal["pending", "sent", "failed", "off"]
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class AlertDetail(AlertRead):
    notifications: list[NotificationRead]


class AlertPage(BaseModel):
    items: list[AlertRead]
    total: int
    next_offset: int | None
