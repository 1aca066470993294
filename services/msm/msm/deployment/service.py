"""Deployments: created through the gate, overridden by a maintainer with a reason, brought up by the
deployer (consumers.py), rolled back to the previous deployment of the same name in one call."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.auth import Identity
from mlife_shared.db import utcnow
from mlife_shared.errors import Forbidden, Unprocessable
from mlife_shared.events.contracts import DeployedVersion, DeploymentRequested, DeploymentRolledBack
from msm.deployment import gate
from msm.deployment.exceptions import DeploymentConflict, DeploymentNotFound
from msm.deployment.models import Deployment, DeploymentBadcase, DeploymentChange, DeploymentMetric
from msm.deployment.repository import DeploymentRepository
from msm.deployment.schemas import DeploymentCreate
from msm.notification.service import emit, fan_out
from msm.registry.repository import RegistryRepository

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "integer": (int,),
                                       "boolean": (bool,)}


class DeploymentService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = DeploymentRepository(session)

    async def get(self, deployment_id: uuid.UUID, *, for_update: bool = False) -> Deployment:
        row = await self.repo.get(deployment_id, for_update=for_update)
        if row is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return row

    async def change(self, deployment: Deployment, status: str, actor: str, detail: str = "") -> None:
        deployment.status, deployment.updated_at = status, utcnow()
        await self.repo.add(DeploymentChange(deployment_id=deployment.id, status=status, actor=actor, detail=detail,
                                             created_at=utcnow()))

    async def create(self, body: DeploymentCreate, user: Identity) -> Deployment:
        if body.override_reason and not user.has("maintainer"):
            raise Forbidden("only a maintainer can override the gate")
        registry = RegistryRepository(self.session)
        found = await registry.versions([v.model_version_id for v in body.versions])
        missing = [str(v.model_version_id) for v in body.versions if v.model_version_id not in found]
        if missing:
            raise Unprocessable(f"unknown model versions: {missing}")
        if body.target in ("local", "docker") and not all(v.servable for v in found.values()):
            raise Unprocessable("only ONNX versions can be served")
        primaries = [found[v.model_version_id] for v in body.versions if v.role == "primary"]
        function = body.function
        if function is None:
            model = await registry.model(primaries[0].model_id)
            function = model.function if model else None
        result = await gate.evaluate(self.session, primaries,
                                     {k: v.model_dump(exclude_none=True) for k, v in body.thresholds.items()})
        deployment = Deployment(
            name=body.name, function=function, target=body.target, routing=body.routing,
            versions=[{"model_version_id": str(v.model_version_id), "weight": v.weight, "role": v.role,
                       "name": found[v.model_version_id].name, "version": found[v.model_version_id].version}
                      for v in body.versions],
            status="blocked", thresholds={k: v.model_dump(exclude_none=True) for k, v in body.thresholds.items()},
            gate=result, overridden=False, metrics_schema=dict(body.metrics_schema), created_by=user.username,
            created_at=utcnow(), updated_at=utcnow())
        await self.repo.add(deployment)
        await self.change(deployment, "blocked" if not result["passed"] else "requested", user.username,
                           "; ".join(result["reasons"]) or "gate passed")
        for badcase in result["regressed_badcases"] + [b for b in result["failing_badcases"]
                                                       if b not in result["regressed_badcases"]]:
            note = "regressed" if badcase in result["regressed_badcases"] else "failing"
            await self.repo.add(DeploymentBadcase(deployment_id=deployment.id, badcase_id=uuid.UUID(badcase),
                                                  source="testing", note=note))
        await self.attach(deployment, body.badcases, "attached at creation")
        if result["passed"]:
            await self._request(deployment)
        elif body.override_reason:
            await self._override(deployment, body.override_reason, user)
        else:
            await self._notify_blocked(deployment)
        return deployment

    async def _notify_blocked(self, deployment: Deployment) -> None:
        """Webhooks only (no consumer needs it on the bus): a request the gate blocked, and why."""
        event_id = uuid.uuid4()
        body = {"id": str(event_id), "type": "deployment.blocked", "source": "msm", "time": utcnow().isoformat(),
                "data": {"deployment_id": str(deployment.id), "name": deployment.name,
                         "reasons": deployment.gate["reasons"],
                         "regressed_badcases": deployment.gate["regressed_badcases"]}}
        await fan_out(self.session, event_id, "deployment.blocked", json.dumps(body))

    async def _request(self, deployment: Deployment) -> None:
        deployment.status = "requested"
        await emit(self.session, DeploymentRequested(
            deployment_id=deployment.id, target=deployment.target, overridden=deployment.overridden,
            override_reason=deployment.override_reason,
            versions=[DeployedVersion(model_version_id=uuid.UUID(v["model_version_id"]), weight=v["weight"],
                                      role=v["role"]) for v in deployment.versions]))

    async def _override(self, deployment: Deployment, reason: str, user: Identity) -> None:
        deployment.overridden, deployment.override_reason, deployment.override_by = True, reason, user.username
        await self.change(deployment, "requested", user.username, f"gate overridden: {reason}")
        await self._request(deployment)

    async def override(self, deployment_id: uuid.UUID, reason: str, user: Identity) -> Deployment:
        deployment = await self.get(deployment_id, for_update=True)
        if deployment.status != "blocked":
            raise DeploymentConflict(f"only a blocked deployment can be overridden; this one is {deployment.status}")
        await self._override(deployment, reason, user)
        return deployment

    async def rollback(self, deployment_id: uuid.UUID, reason: str, user: Identity) -> Deployment:
        """Take a live deployment down and bring the one it replaced back; returns the restored one."""
        current = await self.get(deployment_id, for_update=True)
        if current.status != "live":
            raise DeploymentConflict(f"only a live deployment can be rolled back; this one is {current.status}")
        if current.previous_deployment_id is None:
            raise DeploymentConflict("this deployment replaced none; there is nothing to roll back to")
        previous = await self.get(current.previous_deployment_id, for_update=True)
        if previous.status not in ("superseded", "rolled_back"):
            raise DeploymentConflict(f"the previous deployment is {previous.status}; it cannot be restored")
        await self.change(current, "rolled_back", user.username, reason or "rolled back")
        await self.change(previous, "live", user.username, f"restored by the rollback of {current.id}")
        await emit(self.session, DeploymentRolledBack(deployment_id=current.id, restored_deployment_id=previous.id))
        return previous

    async def attach(self, deployment: Deployment, badcase_ids: list[uuid.UUID], note: str) -> int:
        known = await self.repo.badcase_ids(deployment.id)
        added = 0
        for badcase_id in dict.fromkeys(badcase_ids):
            if badcase_id not in known:
                await self.repo.add(DeploymentBadcase(deployment_id=deployment.id, badcase_id=badcase_id,
                                                      source="manual", note=note))
                added += 1
        return added

    async def record_metrics(self, deployment_id: uuid.UUID, values: dict[str, Any]) -> DeploymentMetric:
        deployment = await self.get(deployment_id)
        schema = deployment.metrics_schema
        unknown = sorted(set(values) - set(schema))
        if unknown:
            raise Unprocessable(f"metrics {unknown} are not in this deployment's schema {schema}")
        for key, value in values.items():
            kind = schema[key]
            if not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
                raise Unprocessable(f"metric {key!r} must be a {kind}")
        row = DeploymentMetric(deployment_id=deployment.id, values=values, created_at=utcnow())
        await self.repo.add(row)
        return row
