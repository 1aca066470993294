"""Deployments: created through the gate (waiting for the tests it asked for, then decided again when their
results arrive), overridden by a maintainer with a reason, brought up by the
deployer (consumers.py), rolled back to the previous deployment of the same name in one call."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.auth import Identity
from mlife_shared.db import utcnow
from mlife_shared.errors import Forbidden, Unprocessable
from mlife_shared.events.contracts import (
    DeployedVersion,
    DeploymentBlocked,
    DeploymentRequested,
    DeploymentRolledBack,
)
from mlife_shared.messaging import outbox
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import Plugins, plugins
from msm.deployment.exceptions import DeploymentConflict, DeploymentNotFound, FunctionMissing
from msm.deployment.gate import Gate
from msm.deployment.models import Deployment, DeploymentBadcase, DeploymentChange, DeploymentMetric, FunctionThresholds
from msm.deployment.repository import DeploymentRepository
from msm.deployment.schemas import (
    BadcaseRead,
    Bound,
    ChangeRead,
    DeploymentCreate,
    DeploymentDetail,
    DeploymentRead,
    FunctionThresholdsRead,
    MetricRead,
)
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.testing.service import TestingService

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "integer": (int,),
                                       "boolean": (bool,)}


class DeploymentService:
    def __init__(self, session: AsyncSession, targets: Plugins | None = None) -> None:
        self.session = session
        self.repo = DeploymentRepository(session)
        self.registry = RegistryRepository(session)
        self.targets = targets or plugins(*seams_of("msm"))  # the deploy targets (the app's: app.state.plugins)

    async def get(self, deployment_id: uuid.UUID, *, for_update: bool = False) -> Deployment:
        row = await self.repo.deployment(deployment_id, for_update=for_update)
        if row is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return row

    async def detail(self, deployment: Deployment) -> DeploymentDetail:
        """The deployment with its status history and attached badcases (the read model of one deployment)."""
        return DeploymentDetail(**DeploymentRead.model_validate(deployment).model_dump(),
                                history=[ChangeRead.model_validate(c) for c in await self.repo.changes(deployment.id)],
                                badcases=[BadcaseRead.model_validate(b)
                                          for b in await self.repo.badcases(deployment.id)])

    async def search(self, name: str | None, status: str | None, limit: int) -> list[DeploymentRead]:
        return [DeploymentRead.model_validate(d) for d in await self.repo.search(name, status, limit)]

    async def metrics(self, deployment_id: uuid.UUID, limit: int) -> list[MetricRead]:
        await self.get(deployment_id)
        return [MetricRead.model_validate(m) for m in await self.repo.metrics(deployment_id, limit)]

    async def change(self, deployment: Deployment, status: str, actor: str, detail: str = "") -> None:
        deployment.status, deployment.updated_at = status, utcnow()
        await self.repo.add(DeploymentChange(deployment_id=deployment.id, status=status, actor=actor, detail=detail,
                                             created_at=utcnow()))

    async def create(self, body: DeploymentCreate, user: Identity) -> Deployment:
        if body.override_reason and not user.has("maintainer"):
            raise Forbidden("only a maintainer can override the gate")
        deployment = await self.repo.add(await self._new(body, user))
        await self.repo.lock_gate()
        result = await self._evaluate(deployment)
        if not result["passed"] and body.override_reason:
            deployment.gate = result
            await self._attach_gate_badcases(deployment, result)
            await self.change(deployment, "awaiting_tests" if result["awaiting"] else "blocked", user.username,
                              "; ".join(result["reasons"]))
            await self._override(deployment, body.override_reason, user)
        else:
            await self._settle(deployment, result, user.username)
        await self.attach(deployment, body.badcases, "attached at creation")
        return deployment

    async def _new(self, body: DeploymentCreate, user: Identity) -> Deployment:
        """The requested deployment, checked: known versions, servable for its target, one declared function."""
        found = await self.registry.versions([v.model_version_id for v in body.versions])
        missing = [str(v.model_version_id) for v in body.versions if v.model_version_id not in found]
        if missing:
            raise Unprocessable(f"unknown model versions: {missing}")
        target = self.targets.get("deploy_targets", body.target)
        if target.onnx_only and not all(v.servable for v in found.values()):
            raise Unprocessable(f"the {body.target} target takes ONNX versions only; "
                                f"not ONNX: {sorted(v.name + ':' + v.version for v in found.values() if not v.servable)}")
        function = await self._function_of([found[v.model_version_id] for v in body.versions if v.role == "primary"])
        if body.function is not None and body.function != function:
            raise Unprocessable(f"the deployment serves function {function!r} (its model's), not {body.function!r}")
        return Deployment(
            name=body.name, function=function, target=body.target, routing=body.routing,
            versions=[{"model_version_id": str(v.model_version_id), "weight": v.weight, "role": v.role,
                       "name": found[v.model_version_id].name, "version": found[v.model_version_id].version}
                      for v in body.versions],
            status="new", thresholds=await self._thresholds(function, body.thresholds or None), gate={},
            overridden=False, metrics_schema=dict(body.metrics_schema), created_by=user.username,
            created_at=utcnow(), updated_at=utcnow())

    async def _function_of(self, primaries: list[ModelVersion]) -> str:
        """The function the primary versions' model(s) declare: required, and one for all."""
        functions = {}
        for version in primaries:
            model = await self.registry.model(version.model_id)
            if model is None or not model.function:
                raise FunctionMissing(
                    f"set the function of model {version.name!r} first: PATCH /api/msm/models/{version.name} with "
                    f'{{"function": "<the function it serves>"}} (the gate, badcases and test sets are per function)')
            functions[model.function] = version.name
        if len(functions) > 1:
            raise Unprocessable(f"the primary versions serve different functions: {sorted(functions)}")
        return next(iter(functions))

    async def reevaluate(self, *, version_id: uuid.UUID | None = None, function: str | None = None,
                         correlation: dict[str, Any] | None = None) -> list[Deployment]:
        """Decide again every deployment awaiting tests that involves `version_id` (as a candidate or as the
        production it is compared with) or serves `function`: it stays, becomes requested, or blocked."""
        decided = []
        await self.repo.lock_gate()
        for row in await self.repo.awaiting_tests(function):
            involved = {v["model_version_id"] for v in row.versions} | {
                e["model_version_id"] for e in row.gate.get("evidence", [])}
            if version_id is not None and str(version_id) not in involved:
                continue
            deployment = await self.get(row.id, for_update=True)  # one decision per deployment at a time
            if deployment.status != "awaiting_tests":
                continue
            await self._settle(deployment, await self._evaluate(deployment), "gate", correlation)
            decided.append(deployment)
        return decided

    async def preview(self, version: ModelVersion, thresholds: dict[str, Bound] | None) -> dict[str, Any]:
        """What the gate would decide about `version` now, nothing recorded or sent: `thresholds`, else the
        function's defaults."""
        function = await self._function_of([version])
        return await Gate(self.session).evaluate([version], await self._thresholds(function, thresholds),
                                                 function=function)

    async def _thresholds(self, function: str, given: dict[str, Bound] | None) -> dict[str, dict[str, float]]:
        if given is not None:
            return {k: v.model_dump(exclude_none=True) for k, v in given.items()}
        defaults = await self.repo.function_thresholds(function)
        return dict(defaults.thresholds) if defaults else {}

    async def _evaluate(self, deployment: Deployment) -> dict[str, Any]:
        ids = [uuid.UUID(v["model_version_id"]) for v in deployment.versions if v["role"] == "primary"]
        found = await self.registry.versions(ids)
        assert deployment.function is not None  # set at creation (the column is nullable for old rows only)
        result = await Gate(self.session).evaluate([found[i] for i in ids if i in found], deployment.thresholds,
                                                   function=deployment.function)
        result["requested"] = list(deployment.gate.get("requested", []))
        return result

    async def _settle(self, deployment: Deployment, result: dict[str, Any], actor: str,
                      correlation: dict[str, Any] | None = None) -> None:
        deployment.gate = result
        if result["awaiting"]:
            if deployment.status != "awaiting_tests":
                await self.change(deployment, "awaiting_tests", actor, "; ".join(result["reasons"]))
            await self._ask_for_tests(deployment, correlation)
            return
        await self._attach_gate_badcases(deployment, result)
        if result["passed"]:
            await self.change(deployment, "requested", actor, "gate passed")
            await self._request(deployment, correlation)
        else:
            await self.change(deployment, "blocked", actor, "; ".join(result["reasons"]))
            await self._notify_blocked(deployment)

    async def _attach_gate_badcases(self, deployment: Deployment, result: dict[str, Any]) -> None:
        regressed = result["regressed_badcases"]
        for badcase in regressed + [b for b in result["failing_badcases"] if b not in regressed]:
            await self.attach(deployment, [uuid.UUID(badcase)], "regressed" if badcase in regressed else "failing",
                              source="testing")

    async def _ask_for_tests(self, deployment: Deployment, correlation: dict[str, Any] | None) -> None:
        """testing.requested for each missing (version, dataset) not asked for yet by this deployment."""
        asked = {(r["model_version_id"], r["dataset_id"]) for r in deployment.gate.get("requested", [])}
        pending = [e for e in deployment.gate["evidence"] if e["state"] == "pending"
                   and (e["model_version_id"], e["dataset_id"]) not in asked]
        versions = await self.registry.versions([uuid.UUID(e["model_version_id"]) for e in pending])
        testing = TestingService(self.session)
        for e in pending:
            version = versions[uuid.UUID(e["model_version_id"])]
            await testing.request(version, deployment.function, uuid.UUID(e["dataset_id"]), e["set_kind"],
                                  f"the gate of deployment {deployment.name} ({deployment.id}) needs this result",
                                  correlation)
            asked.add((e["model_version_id"], e["dataset_id"]))
        deployment.gate = {**deployment.gate, "requested": [{"model_version_id": v, "dataset_id": d}
                                                            for v, d in sorted(asked)]}

    async def _notify_blocked(self, deployment: Deployment) -> None:
        """A request the gate blocked, and why (the gateway's webhooks and alerts follow it)."""
        await outbox.add(self.session, DeploymentBlocked(
            deployment_id=deployment.id, name=deployment.name, function=deployment.function,
            reasons=deployment.gate["reasons"], regressed_badcases=deployment.gate["regressed_badcases"]))

    async def _request(self, deployment: Deployment, correlation: dict[str, Any] | None = None) -> None:
        deployment.status = "requested"
        await outbox.add(self.session, DeploymentRequested(
            deployment_id=deployment.id, function=deployment.function, target=deployment.target,
            overridden=deployment.overridden,
            override_reason=deployment.override_reason,
            versions=[DeployedVersion(model_version_id=uuid.UUID(v["model_version_id"]), weight=v["weight"],
                                      role=v["role"]) for v in deployment.versions]), **(correlation or {}))

    async def _override(self, deployment: Deployment, reason: str, user: Identity) -> None:
        deployment.overridden, deployment.override_reason, deployment.override_by = True, reason, user.username
        await self.change(deployment, "requested", user.username, f"gate overridden: {reason}")
        await self._request(deployment)

    async def override(self, deployment_id: uuid.UUID, reason: str, user: Identity) -> Deployment:
        deployment = await self.get(deployment_id, for_update=True)
        if deployment.status not in ("blocked", "awaiting_tests"):
            raise DeploymentConflict("only a blocked deployment or one awaiting tests can be overridden; this one is "
                                     f"{deployment.status}")
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
        await outbox.add(self.session, DeploymentRolledBack(deployment_id=current.id, function=current.function,
                                                            restored_deployment_id=previous.id))
        return previous

    async def attach(self, deployment: Deployment, badcase_ids: list[uuid.UUID], note: str,
                     source: str = "manual") -> int:
        known = await self.repo.badcase_ids(deployment.id)
        added = 0
        for badcase_id in dict.fromkeys(badcase_ids):
            if badcase_id not in known:
                await self.repo.add(DeploymentBadcase(deployment_id=deployment.id, badcase_id=badcase_id,
                                                      source=source, note=note))
                added += 1
        return added

    async def function_thresholds(self, function: str) -> FunctionThresholdsRead:
        row = await self.repo.function_thresholds(function)
        if row is None:
            return FunctionThresholdsRead(function=function, thresholds={})
        return FunctionThresholdsRead.model_validate(row, from_attributes=True)

    async def set_function_thresholds(self, function: str, thresholds: dict[str, Any],
                                      user: Identity) -> FunctionThresholdsRead:
        if not function.strip() or len(function) > 200:
            raise Unprocessable("a function name is 1-200 characters")
        await self.repo.lock_gate()  # two first PUTs of a function would both insert (a 500 for one)
        row = await self.repo.function_thresholds(function)
        if row is None:
            row = FunctionThresholds(function=function, thresholds=thresholds, updated_by=user.username,
                                     updated_at=utcnow())
            await self.repo.add(row)
        else:
            row.thresholds, row.updated_by, row.updated_at = thresholds, user.username, utcnow()
            await self.session.flush()
        return FunctionThresholdsRead.model_validate(row, from_attributes=True)

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
