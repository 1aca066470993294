from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlife_shared.db import Base
from msm.columns import DeploymentRef, JsonObject, Prose, Record, Timestamp, Username

# awaiting_tests → requested | blocked (the gate decides once the evidence is in); blocked → (override) →
# requested → live | failed; live → superseded (a newer live one) | rolled_back
STATUSES = ("awaiting_tests", "blocked", "requested", "live", "failed", "superseded", "rolled_back")


class Deployment(Record):
    __tablename__ = "deployment"

    name: Mapped[str] = mapped_column(String(100), index=True)
    function: Mapped[str | None] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(20))  # local | docker | edge
    routing: Mapped[str] = mapped_column(String(20))  # single | ab | shadow
    versions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{model_version_id, weight, role}]
    status: Mapped[str] = mapped_column(String(20), index=True)
    thresholds: Mapped[JsonObject]
    gate: Mapped[JsonObject]
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_by: Mapped[str | None] = mapped_column(String(100))
    metrics_schema: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    previous_deployment_id: Mapped[uuid.UUID | None] = mapped_column()
    artifact_key: Mapped[str | None] = mapped_column(String(1024))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[Username]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class DeploymentChange(Record):
    """The status history of a deployment."""

    __tablename__ = "deployment_change"

    deployment_id: Mapped[DeploymentRef]
    status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[Username]
    detail: Mapped[Prose]
    created_at: Mapped[Timestamp]


class DeploymentBadcase(Record):
    """A badcase attached to a deployment: by its gate (regressed or failing) or by hand."""

    __tablename__ = "deployment_badcase"
    __table_args__ = (UniqueConstraint("deployment_id", "badcase_id", name="uq_deployment_badcase_deployment_id"),)

    deployment_id: Mapped[DeploymentRef]
    badcase_id: Mapped[uuid.UUID] = mapped_column()
    source: Mapped[str] = mapped_column(String(20))  # testing | manual
    note: Mapped[Prose]
    created_at: Mapped[Timestamp]


class DeploymentMetric(Record):
    """One set of user-defined metric values (client id, device id, pending time, …) for a deployment."""

    __tablename__ = "deployment_metric"

    deployment_id: Mapped[DeploymentRef]
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[Timestamp]


class FunctionThresholds(Base):
    """The default gate thresholds of a function, used when a deployment request gives none."""

    __tablename__ = "function_thresholds"

    function: Mapped[str] = mapped_column(String(200), primary_key=True)
    thresholds: Mapped[JsonObject]
    updated_by: Mapped[Username]
    updated_at: Mapped[Timestamp]
