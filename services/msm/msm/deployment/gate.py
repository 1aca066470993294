"""The deployment gate: a candidate must have testing results, meet the metric thresholds, and not fail
any badcase that the version now in `production` passes (a previously fixed badcase)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.testing.repository import TestingRepository


def latest_metrics(results: list[Any]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for result in results:  # newest first: the first value of a metric wins
        for key, value in result.metrics.items():
            merged.setdefault(key, value)
    return merged


async def evaluate(session: AsyncSession, candidates: list[ModelVersion],
                   thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
    registry, testing = RegistryRepository(session), TestingRepository(session)
    reasons: list[str] = []
    regressed: set[str] = set()
    failing: set[str] = set()
    details = []
    for version in candidates:
        label = f"{version.name} v{version.version}"
        results = list(await testing.results(version.name, version.version))
        metrics = latest_metrics(results)
        detail: dict[str, Any] = {"model_version_id": str(version.id), "model": version.name,
                                  "version": version.version, "tested": bool(results), "metrics": metrics}
        if not results:
            reasons.append(f"{label} has no testing results: run a testing task on it first")
        for metric, bound in thresholds.items():
            value = metrics.get(metric)
            if value is None:
                if results:
                    reasons.append(f"{label} has no {metric!r} in its testing results")
            elif "min" in bound and value < bound["min"]:
                reasons.append(f"{label}: {metric} = {value:g} is below the minimum {bound['min']:g}")
            elif "max" in bound and value > bound["max"]:
                reasons.append(f"{label}: {metric} = {value:g} is above the maximum {bound['max']:g}")
        outcomes = await testing.outcomes(version.name, version.version)
        failing.update(str(b) for b, ok in outcomes.items() if not ok)
        model = await registry.model_by_name(version.name)
        alias = await registry.alias(model.id, "production") if model else None
        detail["production_version_id"] = str(alias.version_id) if alias else None
        if alias is not None and alias.version_id != version.id:
            production = await registry.version(alias.version_id)
            assert production is not None
            prod = await testing.outcomes(production.name, production.version)
            mine = sorted(str(b) for b, ok in prod.items() if ok and outcomes.get(b) is False)
            detail["regressed_badcases"] = mine
            detail["fixed_badcases"] = sorted(str(b) for b, ok in outcomes.items() if ok and prod.get(b) is False)
            detail["untested_badcases"] = sorted(str(b) for b, ok in prod.items() if ok and b not in outcomes)
            detail["production_version"] = production.version
            if mine:
                regressed.update(mine)
                reasons.append(f"{label} fails {len(mine)} badcase(s) that production v{production.version} passes")
        details.append(detail)
    return {"passed": not reasons, "reasons": reasons, "regressed_badcases": sorted(regressed),
            "failing_badcases": sorted(failing), "thresholds": thresholds, "versions": details,
            "checked_at": utcnow().isoformat()}
