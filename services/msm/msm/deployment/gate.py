"""The deployment gate, per function (docs/functions.md). Evidence = each primary candidate's results on
its function's current badcase test set (when one exists) and on each of its test splits; production's
result on that badcase test set too. While any of it is missing the answer is "awaiting". Then a candidate
is blocked by: a test that failed on a required set, a threshold missed on the set it names, a badcase
production passes and the candidate fails (regressed), or one production passes and the candidate was
never tested on (untested). Badcases and production are those of the function only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.testing.models import TestingResult
from msm.testing.repository import TestingRepository

SET_KINDS = ("test_split", "badcase_test_set")
SET_NAMES = {"test_split": "test split", "badcase_test_set": "badcase test set"}


def split_threshold(key: str) -> tuple[str, str]:
    """`test_split.accuracy` → (test_split, accuracy); a bare metric name means the test split."""
    kind, dot, metric = key.partition(".")
    if dot and kind in SET_KINDS and metric:
        return kind, metric
    return "test_split", key


@dataclass
class Evidence:
    version: ModelVersion
    dataset_id: uuid.UUID
    set_kind: str
    role: str  # candidate | production
    state: str = "pending"  # done | pending | failed
    reason: str = ""
    result: TestingResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model_version_id": str(self.version.id), "model": self.version.name,
                "version": self.version.version, "role": self.role, "dataset_id": str(self.dataset_id),
                "set_kind": self.set_kind, "state": self.state, "reason": self.reason}


def label(version: ModelVersion) -> str:
    return f"{version.name} v{version.version}"


class Gate:
    """Reads the evidence and decides; records nothing (the deployment service keeps the answer)."""

    def __init__(self, session: AsyncSession) -> None:
        self.registry = RegistryRepository(session)
        self.testing = TestingRepository(session)

    async def evaluate(self, candidates: list[ModelVersion], thresholds: dict[str, dict[str, float]], *,
                       function: str) -> dict[str, Any]:
        current = await self.testing.current_test_set(function)
        production = await self.registry.production_of_function(function)
        evidence = await self._evidence(candidates, current.dataset_id if current else None, production)
        out: dict[str, Any] = {
            "function": function, "badcase_test_set_id": str(current.dataset_id) if current else None,
            "production_version_id": str(production.id) if production else None, "thresholds": thresholds,
            "evidence": [e.as_dict() for e in evidence], "reasons": [], "regressed_badcases": [],
            "untested_badcases": [], "failing_badcases": [], "versions": [], "checked_at": utcnow().isoformat()}
        pending = [e for e in evidence if e.state == "pending"]
        if pending:
            out["reasons"] = [f"waiting for {label(e.version)} on the {SET_NAMES[e.set_kind]} {e.dataset_id}"
                              for e in pending]
            return {**out, "passed": False, "awaiting": True}
        badcases = await self._compare(candidates, evidence, thresholds, function, production, out)
        for e in evidence:
            if e.role == "production" and e.state == "failed":  # noted: production's older outcomes still count
                out.setdefault("notes", []).append(f"production {label(e.version)} could not be tested on the "
                                                   f"badcase test set: {e.reason}")
        return {**out, "passed": not out["reasons"], "awaiting": False,
                **{key: sorted(ids) for key, ids in badcases.items()}}

    async def _evidence(self, candidates: list[ModelVersion], badcase_set: uuid.UUID | None,
                        production: ModelVersion | None) -> list[Evidence]:
        """Each candidate on the badcase test set and its test splits; production on the badcase test set."""
        evidence: list[Evidence] = []
        for version in candidates:
            if badcase_set is not None:
                evidence.append(await self._collect(version, badcase_set, "badcase_test_set", "candidate"))
            for dataset_id in version.test_dataset_ids:
                evidence.append(await self._collect(version, uuid.UUID(dataset_id), "test_split", "candidate"))
        if production is not None and badcase_set is not None and production.id not in {c.id for c in candidates}:
            evidence.append(await self._collect(production, badcase_set, "badcase_test_set", "production"))
        return evidence

    async def _collect(self, version: ModelVersion, dataset_id: uuid.UUID, set_kind: str, role: str) -> Evidence:
        evidence = Evidence(version, dataset_id, set_kind, role)
        result = await self.testing.latest_result(version.id, dataset_id)
        failure = await self.testing.latest_failure(version.id, dataset_id)
        if result is not None and (failure is None or result.created_at >= failure.created_at):
            evidence.state, evidence.result = "done", result
        elif failure is not None:
            evidence.state = "failed"
            prefixed = not failure.incompatible or failure.reason.startswith("incompatible")
            evidence.reason = failure.reason if prefixed else f"incompatible: {failure.reason}"
        else:
            evidence.reason = "waiting for the testing result"
        return evidence

    async def _compare(self, candidates: list[ModelVersion], evidence: list[Evidence],
                       thresholds: dict[str, dict[str, float]], function: str, production: ModelVersion | None,
                       out: dict[str, Any]) -> dict[str, set[str]]:
        """Each candidate judged on its own evidence and against production's badcase outcomes; appends the
        reasons and per-version details to `out`, returns the regressed / untested / failing badcases."""
        reasons: list[str] = out["reasons"]
        prod_outcomes = (await self.testing.outcomes(production.name, production.version, function)
                         if production else {})
        found: dict[str, set[str]] = {"regressed_badcases": set(), "untested_badcases": set(),
                                      "failing_badcases": set()}
        for version in candidates:
            detail = _judge(version, [e for e in evidence if e.version.id == version.id], thresholds, function,
                            reasons)
            detail["production_version_id"] = str(production.id) if production else None
            outcomes = await self.testing.outcomes(version.name, version.version, function)
            found["failing_badcases"].update(str(b) for b, ok in outcomes.items() if not ok)
            if production is not None and production.id != version.id:
                lost = sorted(str(b) for b, ok in prod_outcomes.items() if ok and outcomes.get(b) is False)
                never = sorted(str(b) for b, ok in prod_outcomes.items() if ok and b not in outcomes)
                detail.update(production_version=production.version, regressed_badcases=lost,
                              untested_badcases=never,
                              fixed_badcases=sorted(str(b) for b, ok in outcomes.items()
                                                    if ok and prod_outcomes.get(b) is False))
                where = f"production {label(production)}"
                if lost:
                    found["regressed_badcases"].update(lost)
                    reasons.append(f"{label(version)} fails {len(lost)} badcase(s) that {where} passes")
                if never:
                    found["untested_badcases"].update(never)
                    reasons.append(f"{label(version)} was never tested on {len(never)} badcase(s) that {where} "
                                   "passes")
            out["versions"].append(detail)
        return found


def _judge(version: ModelVersion, evidence: list[Evidence], thresholds: dict[str, dict[str, float]], function: str,
           reasons: list[str]) -> dict[str, Any]:
    """One candidate's own evidence: failed tests and the thresholds, each on the set it names."""
    name = label(version)
    metrics: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in SET_KINDS}
    for e in evidence:
        if e.state == "failed":
            reasons.append(f"{name} could not be tested on the {SET_NAMES[e.set_kind]} {e.dataset_id}: {e.reason}")
        elif e.result is not None:
            metrics[e.set_kind][str(e.dataset_id)] = dict(e.result.metrics)
    if not evidence:
        reasons.append(f"{name} has nothing to be tested on: it has no test split and function {function!r} has no "
                       f"badcase test set yet (give its test split: PATCH /api/msm/model-versions/{version.id} "
                       f"with test_dataset_ids)")
    for key, bound in thresholds.items():
        kind, metric = split_threshold(key)
        sets = [e for e in evidence if e.set_kind == kind]
        if not sets:
            reasons.append(f"{name}: threshold {key!r} applies to the {SET_NAMES[kind]}, and it has none")
        for e in sets:
            if e.result is None:
                continue  # failed: already a reason
            value = e.result.metrics.get(metric)
            where = f"on the {SET_NAMES[kind]} {e.dataset_id}"
            if value is None:
                reasons.append(f"{name} has no {metric!r} in its result {where}")
            elif "min" in bound and value < bound["min"]:
                reasons.append(f"{name}: {metric} = {value:g} {where} is below the minimum {bound['min']:g}")
            elif "max" in bound and value > bound["max"]:
                reasons.append(f"{name}: {metric} = {value:g} {where} is above the maximum {bound['max']:g}")
    return {"model_version_id": str(version.id), "model": version.name, "version": version.version,
            "tested": any(e.result is not None for e in evidence), "metrics": metrics}
