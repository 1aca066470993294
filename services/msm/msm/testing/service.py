"""Testing results from MTT (`testing.completed`): the metrics of a model version on a dataset and the
latest outcome of each badcase of the badcase test set. The gate reads them; a compression waiting
for its accuracy delta gets it when both of its versions were tested on its dataset."""

from __future__ import annotations


import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.events import Envelope
from mlife_shared.events.outcomes import outcome_lines
from mlife_shared.events.contracts import TestingCompleted
from mlife_shared.objectstore import ObjectStore
from msm.registry.repository import RegistryRepository
from msm.testing.models import TestingResult
from msm.testing.repository import TestingRepository

log = structlog.get_logger(__name__)


async def apply_testing_completed(session: AsyncSession, store: ObjectStore,
                                  event: Envelope[TestingCompleted]) -> TestingResult | None:
    d = event.data
    repo = TestingRepository(session)
    if await repo.by_task(d.task_id) is not None:
        return None  # the same task reported twice: keep the first
    outcomes: dict = {}
    samples = passed = 0
    async for line in outcome_lines(store, d.outcomes_key):
        samples += 1
        passed += int(line.correct)
        if line.badcase_id is not None:
            outcomes[line.badcase_id] = line.correct
    result = TestingResult(task_id=d.task_id, model_name=d.model_name, model_version=d.model_version,
                           dataset_id=d.dataset_id, metrics=dict(d.metrics), samples=samples, passed=passed,
                           badcases=len(outcomes), created_at=utcnow())
    await repo.add(result)
    await repo.replace_outcomes(d.model_name, d.model_version, d.task_id, outcomes)
    if d.dataset_id is not None:
        await _measure_compressions(session, d.dataset_id)
    log.info("testing_recorded", model=d.model_name, version=d.model_version, samples=samples,
             badcases=len(outcomes))
    return result


async def _measure_compressions(session: AsyncSession, dataset_id) -> None:  # type: ignore[no-untyped-def]
    registry, testing = RegistryRepository(session), TestingRepository(session)
    for comp in await registry.compressions_on(dataset_id):
        versions = await registry.versions([comp.source_version_id, comp.compressed_version_id])
        source, compressed = versions.get(comp.source_version_id), versions.get(comp.compressed_version_id)
        if source is None or compressed is None:
            continue
        before = await testing.latest_on(source.name, source.version, dataset_id)
        after = await testing.latest_on(compressed.name, compressed.version, dataset_id)
        if before is None or after is None:
            continue
        comp.metric_delta = {k: after.metrics[k] - before.metrics[k] for k in before.metrics if k in after.metrics}
        if before.samples and after.samples and "accuracy" not in comp.metric_delta:
            comp.metric_delta["accuracy"] = after.passed / after.samples - before.passed / before.samples
        comp.measured_at = utcnow()
    await session.flush()
