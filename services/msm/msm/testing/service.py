"""Testing evidence from MTT and DAM: `testing.completed` (the metrics of a model version on a dataset, the
kind of set, and the latest outcome of each badcase), `testing.failed` (a version could not be tested on a
dataset), and each function's badcase test sets (`dataset.grouped`). The gate reads them; MSM asks MTT for
what it lacks with `testing.requested`. A compression waiting for its accuracy delta gets it when both of
its versions were tested on its dataset."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DatasetGrouped, SetKind, TestingCompleted, TestingFailed, TestingRequested
from mlife_shared.events.outcomes import outcome_lines
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ObjectStore
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.testing.models import BadcaseTestSet, TestingFailure, TestingResult
from msm.testing.repository import TestingRepository

log = structlog.get_logger(__name__)


class TestingService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = TestingRepository(session)
        self.registry = RegistryRepository(session)

    async def record_completed(self, store: ObjectStore, event: Envelope[TestingCompleted]) -> TestingResult | None:
        d = event.data
        if await self.repo.by_task(d.task_id) is not None:
            return None  # the same task reported twice: keep the first
        outcomes: dict[uuid.UUID, bool] = {}
        samples = passed = 0
        async for line in outcome_lines(store, d.outcomes_key):
            samples += 1
            passed += int(line.correct)
            if line.badcase_id is not None:
                outcomes[line.badcase_id] = line.correct
        result = await self.repo.add(TestingResult(
            task_id=d.task_id, model_name=d.model_name, model_version=d.model_version,
            model_version_id=await self._version_id(d.model_version_id, d.model_name, d.model_version),
            dataset_id=d.dataset_id, set_kind=d.set_kind, function=d.function or await self._function_of(d.model_name),
            metrics=dict(d.metrics), samples=samples, passed=passed, badcases=len(outcomes), created_at=utcnow()))
        await self.repo.replace_outcomes(d.model_name, d.model_version, d.task_id, outcomes)
        if d.dataset_id is not None:
            await self._measure_compressions(d.dataset_id)
        log.info("testing_recorded", model=d.model_name, version=d.model_version, samples=samples,
                 badcases=len(outcomes), set_kind=d.set_kind)
        return result

    async def record_failed(self, event: Envelope[TestingFailed]) -> TestingFailure | None:
        d = event.data
        if d.task_id is not None and await self.repo.failure_by_task(d.task_id) is not None:
            return None
        version_id = await self._version_id(d.model_version_id, d.model_name, d.model_version)
        if version_id is None:
            log.warning("testing_failed_unknown_version", model=d.model_name, version=d.model_version)
            return None
        failure = await self.repo.add(TestingFailure(
            task_id=d.task_id, model_version_id=version_id, dataset_id=d.dataset_id, set_kind=d.set_kind,
            incompatible=d.incompatible, reason=d.reason[:4000], created_at=utcnow()))
        log.info("testing_failed_recorded", model=d.model_name, version=d.model_version,
                 dataset_id=str(d.dataset_id), incompatible=d.incompatible)
        return failure

    async def record_test_set(self, event: Envelope[DatasetGrouped]) -> BadcaseTestSet | None:
        """Keep a function's badcase test set (others are not MSM's concern); returns it when it is new."""
        d = event.data
        if not d.is_badcase_test_set or not d.function:
            return None
        if await self.repo.test_set(d.dataset_id) is not None:
            return None
        return await self.repo.add(BadcaseTestSet(dataset_id=d.dataset_id, function=d.function, name=d.name,
                                                  version=d.version, item_count=d.item_count, grouped_at=event.time))

    async def test_production_on(self, function: str, *, reason: str,
                                 correlation: dict[str, Any] | None = None) -> ModelVersion | None:
        """Ask for production's result on the function's current badcase test set when it has none, so the
        badcase statuses (which follow production) stay current. Returns the version asked about."""
        current = await self.repo.current_test_set(function)
        production = await self.registry.production_of_function(function)
        if current is None or production is None:
            return None
        if await self.repo.latest_result(production.id, current.dataset_id) is not None:
            return None
        await self.request(production, function, current.dataset_id, "badcase_test_set", reason, correlation)
        return production

    async def request(self, version: ModelVersion, function: str | None, dataset_id: uuid.UUID, set_kind: SetKind,
                      reason: str, correlation: dict[str, Any] | None = None) -> None:
        """testing.requested: MTT tests `version` on the dataset."""
        await outbox.add(self.session, TestingRequested(
            model_version_id=version.id, model_name=version.name, model_version=version.version,
            format=version.format, object_key=version.object_key, function=function, dataset_id=dataset_id,
            set_kind=set_kind, reason=reason), **(correlation or {}))

    async def _version_id(self, known: uuid.UUID | None, name: str, number: str) -> uuid.UUID | None:
        if known is not None:
            return known
        version = await self.registry.version_by_name(name, number)
        return version.id if version else None

    async def _function_of(self, name: str) -> str | None:
        model = await self.registry.model_by_name(name)
        return model.function if model else None

    async def _measure_compressions(self, dataset_id: uuid.UUID) -> None:
        for comp in await self.registry.compressions_on(dataset_id):
            versions = await self.registry.versions([comp.source_version_id, comp.compressed_version_id])
            source, compressed = versions.get(comp.source_version_id), versions.get(comp.compressed_version_id)
            if source is None or compressed is None:
                continue
            before = await self.repo.latest_on(source.name, source.version, dataset_id)
            after = await self.repo.latest_on(compressed.name, compressed.version, dataset_id)
            if before is None or after is None:
                continue
            delta = {k: after.metrics[k] - before.metrics[k] for k in before.metrics if k in after.metrics}
            if before.samples and after.samples and "accuracy" not in delta:
                delta["accuracy"] = after.passed / after.samples - before.passed / before.samples
            comp.metric_delta, comp.measured_at = delta, utcnow()
        await self.session.flush()
