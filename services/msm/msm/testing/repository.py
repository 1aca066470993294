from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select

from mlife_shared.db import utcnow
from mlife_shared.repository import Repository
from msm.testing.models import BadcaseOutcome, BadcaseTestSet, TestingFailure, TestingResult


class TestingRepository(Repository):
    async def by_task(self, task_id: uuid.UUID) -> TestingResult | None:
        return await self.session.scalar(select(TestingResult).where(TestingResult.task_id == task_id))

    async def results(self, model_name: str, model_version: str) -> Sequence[TestingResult]:
        return (await self.session.scalars(
            select(TestingResult).where(TestingResult.model_name == model_name,
                                        TestingResult.model_version == model_version)
            .order_by(TestingResult.created_at.desc()))).all()

    async def latest_on(self, model_name: str, model_version: str, dataset_id: uuid.UUID) -> TestingResult | None:
        return await self.session.scalar(
            select(TestingResult).where(TestingResult.model_name == model_name,
                                        TestingResult.model_version == model_version,
                                        TestingResult.dataset_id == dataset_id)
            .order_by(TestingResult.created_at.desc()).limit(1))

    async def latest_result(self, version_id: uuid.UUID, dataset_id: uuid.UUID) -> TestingResult | None:
        return await self.session.scalar(
            select(TestingResult).where(TestingResult.model_version_id == version_id,
                                        TestingResult.dataset_id == dataset_id)
            .order_by(TestingResult.created_at.desc(), TestingResult.id).limit(1))

    async def latest_failure(self, version_id: uuid.UUID, dataset_id: uuid.UUID) -> TestingFailure | None:
        return await self.session.scalar(
            select(TestingFailure).where(TestingFailure.model_version_id == version_id,
                                         TestingFailure.dataset_id == dataset_id)
            .order_by(TestingFailure.created_at.desc(), TestingFailure.id).limit(1))

    async def failure_by_task(self, task_id: uuid.UUID) -> TestingFailure | None:
        return await self.session.scalar(select(TestingFailure).where(TestingFailure.task_id == task_id).limit(1))

    async def replace_outcomes(self, model_name: str, model_version: str, task_id: uuid.UUID,
                               outcomes: dict[uuid.UUID, bool]) -> None:
        """Upsert the latest outcome of each badcase for this model version (delete + insert: portable)."""
        if not outcomes:
            return
        ids = list(outcomes)
        for i in range(0, len(ids), 500):
            await self.session.execute(delete(BadcaseOutcome).where(
                BadcaseOutcome.model_name == model_name, BadcaseOutcome.model_version == model_version,
                BadcaseOutcome.badcase_id.in_(ids[i:i + 500])))
        now = utcnow()
        await self.add_all(BadcaseOutcome(model_name=model_name, model_version=model_version, badcase_id=b,
                                          correct=c, task_id=task_id, updated_at=now) for b, c in outcomes.items())

    async def outcomes(self, model_name: str, model_version: str,
                       function: str | None = None) -> dict[uuid.UUID, bool]:
        """The latest outcome of each badcase for this version; with `function`, only outcomes from results
        on that function's sets (a badcase of another function is none of its gate's business)."""
        statement = select(BadcaseOutcome.badcase_id, BadcaseOutcome.correct).where(
            BadcaseOutcome.model_name == model_name, BadcaseOutcome.model_version == model_version)
        if function is not None:
            statement = statement.join(TestingResult, TestingResult.task_id == BadcaseOutcome.task_id).where(
                TestingResult.function == function)
        rows = await self.session.execute(statement)
        return {b: c for b, c in rows.all()}

    # ---- badcase test sets ---------------------------------------------------------------------

    async def test_set(self, dataset_id: uuid.UUID) -> BadcaseTestSet | None:
        return await self.session.scalar(select(BadcaseTestSet).where(BadcaseTestSet.dataset_id == dataset_id))

    async def current_test_set(self, function: str) -> BadcaseTestSet | None:
        return await self.session.scalar(
            select(BadcaseTestSet).where(BadcaseTestSet.function == function)
            .order_by(BadcaseTestSet.grouped_at.desc(), BadcaseTestSet.version.desc()).limit(1))
