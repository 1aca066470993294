"""Testing evidence arriving: record it, then let every deployment waiting for it be decided again in the same
transaction (so a result is never recorded without its deployments moving on)."""

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DatasetGrouped, TestingCompleted, TestingFailed
from mlife_shared.messaging.outbox import caused_by
from msm.config import Settings
from msm.deployment.service import DeploymentService
from msm.testing.service import TestingService


async def on_testing_completed(event: Envelope[TestingCompleted], session: AsyncSession,
                               ctx: ServiceContext[Settings]) -> None:
    result = await TestingService(session).record_completed(ctx.store, event)
    if result is not None and result.model_version_id is not None:
        await DeploymentService(session).reevaluate(version_id=result.model_version_id, correlation=caused_by(event))


async def on_testing_failed(event: Envelope[TestingFailed], session: AsyncSession,
                            ctx: ServiceContext[Settings]) -> None:
    failure = await TestingService(session).record_failed(event)
    if failure is not None:
        await DeploymentService(session).reevaluate(version_id=failure.model_version_id, correlation=caused_by(event))


async def on_dataset_grouped(event: Envelope[DatasetGrouped], session: AsyncSession,
                             ctx: ServiceContext[Settings]) -> None:
    """A new badcase test set of a function: production is tested on it, and deployments of the function that
    are waiting for tests now wait for results on this set instead."""
    testing = TestingService(session)
    test_set = await testing.record_test_set(event)
    if test_set is None:
        return
    await testing.test_production_on(test_set.function, correlation=caused_by(event),
                                     reason=f"new badcase test set of {test_set.function} (dataset {test_set.dataset_id})")
    await DeploymentService(session).reevaluate(function=test_set.function, correlation=caused_by(event))
