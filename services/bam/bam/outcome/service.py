"""Testing results → badcases, within the tested model's function: the outcome of each badcase of the badcase test
set for the tested version (kept as history; a line about another function's badcase is counted `foreign` and
ignored), and new mispredictions reported as badcases (source=testing) with their task and model version. A
production version's results move statuses (`bam.production.service`); a candidate's never do."""

from __future__ import annotations

import re
import uuid
from collections import Counter

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.models import Outcome
from bam.badcase.schemas import BadcaseCreate, DataRef
from bam.badcase.service import BadcaseService, ReportContext, function_of
from bam.config import Settings
from bam.outcome.repository import OutcomeRepository, VersionRef
from bam.outcome.schemas import BadcaseOutcomes, ModelVersionOutcome, OutcomeRead
from bam.production.service import ProductionService, is_production
from mlife_shared.db import utcnow
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import TestingCompleted, TestingOutcomeLine
from mlife_shared.events.outcomes import outcome_lines
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore import ObjectStore

log = structlog.get_logger(__name__)
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
LINES_PER_BATCH = 1000


def data_refs(ref: str | None) -> list[DataRef]:
    if not ref:
        return []
    if _MD5.match(ref):
        return [DataRef(kind="md5", value=ref)]
    if ref.startswith(("http://", "https://")):
        return [DataRef(kind="url", value=ref)]
    return [DataRef(kind="key", value=ref)]


class OutcomeService:
    """Outcomes of badcases per model version: applied from `testing.completed`, read per badcase. Never commits
    (the consumer runner and the request do)."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.repo = OutcomeRepository(session)
        self.badcases = BadcaseService(session, settings)
        self.production = ProductionService(session, settings)

    async def apply_testing_completed(self, store: ObjectStore, event: Envelope[TestingCompleted]) -> Counter[str]:
        counts = await _TestingResults(self, event).apply(store)
        log.info("testing_outcomes_applied", task_id=str(event.data.task_id),
                 function=function_of(event.data.function), **counts)
        return counts

    async def outcomes_of(self, badcase_id: uuid.UUID) -> BadcaseOutcomes:
        """The badcase's outcome for every tested model version (latest first), with the full history."""
        b = await self.badcases.get(badcase_id)
        rows = await self.repo.for_badcase(badcase_id)
        production = await self.production.production_of(b.function)
        latest: dict[tuple[str, str], ModelVersionOutcome] = {}
        for o in rows:  # newest first
            key = (o.model_name, o.model_version)
            if key in latest:
                latest[key].tests += 1
            else:
                version = VersionRef(o.model_name, o.model_version, o.model_version_id)
                latest[key] = ModelVersionOutcome(
                    model_name=o.model_name, model_version=o.model_version, model_version_id=o.model_version_id,
                    passed=o.passed, tests=1, last_tested_at=o.recorded_at,
                    production=production is not None and production.same_as(version))
        return BadcaseOutcomes(badcase_id=badcase_id, by_model_version=list(latest.values()),
                               history=[OutcomeRead.model_validate(o, from_attributes=True) for o in rows])


class _TestingResults:
    """One `testing.completed`, applied."""

    def __init__(self, service: OutcomeService, event: Envelope[TestingCompleted]) -> None:
        self.service, self.event = service, event
        d = event.data
        self.function = function_of(d.function)
        self.version = VersionRef(d.model_name, d.model_version, d.model_version_id)
        self.counts: Counter[str] = Counter()

    async def apply(self, store: ObjectStore) -> Counter[str]:
        # The function's production row first, as a promotion does: one lock order, and a promotion waits for
        # these outcomes (or went first, and this result is judged against its version).
        production = await self.service.production.lock(self.function)
        batch: list[TestingOutcomeLine] = []
        async for line in outcome_lines(store, self.event.data.outcomes_key):
            if line.badcase_id is None:
                if not line.correct:
                    await self._report(line)
                continue
            batch.append(line)
            if len(batch) >= LINES_PER_BATCH:
                await self._record(batch)
                batch = []
        await self._record(batch)
        if is_production(production, self.version):
            # Statuses move through the badcases' own triage (`BadcaseService.set_status`), as a promotion's do.
            self.counts.update(await self.service.production.follow(
                production, actor=f"testing:{self.event.data.task_id}", correlation=caused_by(self.event)))
        return self.counts

    async def _record(self, lines: list[TestingOutcomeLine]) -> None:
        """The outcomes of a batch of lines: one query for their badcases' functions, one insert."""
        if not lines:
            return
        ids = list({ln.badcase_id for ln in lines if ln.badcase_id is not None})
        functions = await self.service.badcases.functions_of(ids)
        d, now, outcomes = self.event.data, utcnow(), []
        for line in lines:
            function = functions.get(line.badcase_id) if line.badcase_id is not None else None
            if function is None:
                self.counts["unknown"] += 1
            elif function != self.function:
                self.counts["foreign"] += 1
            else:
                outcomes.append(Outcome(badcase_id=line.badcase_id, model_name=d.model_name,
                                        model_version=d.model_version, model_version_id=d.model_version_id,
                                        task_id=d.task_id, passed=line.correct, prediction=line.prediction,
                                        recorded_at=now))
                self.counts["passed" if line.correct else "failed"] += 1
        await self.service.repo.add_all(outcomes)

    async def _report(self, line: TestingOutcomeLine) -> None:
        d = self.event.data
        try:
            report = BadcaseCreate(
                function=self.function, model_name=d.model_name, model_version=d.model_version, task_id=d.task_id,
                model_version_id=d.model_version_id, data=data_refs(line.data_ref), features=line.features,
                prediction=line.prediction, ground_truth=line.ground_truth,
                description=f"Misprediction in testing task {d.task_id}")
        except ValidationError as exc:
            # A line that can never be a badcase (nested or huge features, a NaN prediction, a bad key: testing code
            # writes these lines) is counted and logged; failing the event would lose every other line's outcome.
            self.counts["invalid"] += 1
            log.warning("testing_line_not_reportable", task_id=str(d.task_id), sample_id=line.sample_id,
                        error=str(exc)[:500])
            return
        await self.service.badcases.record(report, ReportContext(
            reporter="mtt", source="testing", event_id=self.event.id, correlation=caused_by(self.event)))
        self.counts["reported"] += 1
