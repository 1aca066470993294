"""Testing results → badcases: the outcome of each badcase of the badcase test set for the tested
model version (kept as history; a fixed badcase that fails again becomes `regressed`, an open one that
passes becomes `fixed`), and new mispredictions reported as badcases with source=testing."""

from __future__ import annotations

import re
import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.models import Badcase, Outcome, TriageChange
from bam.badcase.repository import BadcaseRepository
from bam.badcase.schemas import BadcaseCreate, DataRef
from bam.badcase.service import BadcaseService, ReportContext
from bam.config import Settings
from bam.outcome.repository import OutcomeRepository
from bam.outcome.schemas import BadcaseOutcomes, ModelVersionOutcome, OutcomeRead
from mlife_shared.db import utcnow
from mlife_shared.events import Envelope
from mlife_shared.events.outcomes import outcome_lines
from mlife_shared.events.contracts import BadcaseUpdated, TestingCompleted
from mlife_shared.messaging import outbox
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore import ObjectStore

log = structlog.get_logger(__name__)
OPEN = {"new", "triaged", "in_progress", "regressed"}
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def data_refs(ref: str | None) -> list[DataRef]:
    if not ref:
        return []
    if _MD5.match(ref):
        return [DataRef(kind="md5", value=ref)]
    if ref.startswith(("http://", "https://")):
        return [DataRef(kind="url", value=ref)]
    return [DataRef(kind="key", value=ref)]


async def apply_testing_completed(session: AsyncSession, settings: Settings, store: ObjectStore,
                                  event: Envelope[TestingCompleted]) -> dict[str, int]:
    d = event.data
    repo, outcomes = BadcaseRepository(session), OutcomeRepository(session)
    service = BadcaseService(session, settings)
    counts = {"passed": 0, "failed": 0, "fixed": 0, "regressed": 0, "reported": 0, "unknown": 0}
    actor = f"testing:{d.task_id}"
    async for line in outcome_lines(store, d.outcomes_key):
        if line.badcase_id is None:
            if not line.correct:
                report = BadcaseCreate(
                    function=d.function or d.model_name, model_name=d.model_name, model_version=d.model_version,
                    data=data_refs(line.data_ref), prediction=line.prediction, ground_truth=line.ground_truth,
                    description=f"Misprediction in testing task {d.task_id}")
                await service.record(report, ReportContext(reporter="mtt", source="testing", event_id=event.id,
                                                           correlation=caused_by(event)))
                counts["reported"] += 1
            continue
        b = await repo.get(line.badcase_id, for_update=True)
        if b is None:
            counts["unknown"] += 1
            continue
        await outcomes.add(Outcome(badcase_id=b.id, model_name=d.model_name, model_version=d.model_version,
                                   task_id=d.task_id, passed=line.correct, prediction=line.prediction,
                                   recorded_at=utcnow()))
        counts["passed" if line.correct else "failed"] += 1
        if line.correct and b.status in OPEN:
            await _set_status(session, b, "fixed", actor, event)
            counts["fixed"] += 1
        elif not line.correct and b.status == "fixed":
            await _set_status(session, b, "regressed", actor, event)
            counts["regressed"] += 1
    log.info("testing_outcomes_applied", task_id=str(d.task_id), **counts)
    return counts


async def _set_status(session: AsyncSession, b: Badcase, status: str, actor: str, event: Envelope[Any]) -> None:
    now = utcnow()
    old = b.status
    b.status, b.updated_at = status, now
    if status == "fixed":
        b.fixed_at = now
    else:
        b.regressed_at = now
    session.add(TriageChange(badcase_id=b.id, actor=actor, field="status", old=old, new=status, changed_at=now))
    await outbox.add(session, BadcaseUpdated(badcase_id=b.id, changes={"status": status}), **caused_by(event))


async def outcomes_of(session: AsyncSession, badcase_id: uuid.UUID) -> BadcaseOutcomes:
    rows = await OutcomeRepository(session).for_badcase(badcase_id)
    latest: dict[tuple[str, str], ModelVersionOutcome] = {}
    for o in rows:  # newest first
        key = (o.model_name, o.model_version)
        if key in latest:
            latest[key].tests += 1
        else:
            latest[key] = ModelVersionOutcome(model_name=o.model_name, model_version=o.model_version,
                                              passed=o.passed, tests=1, last_tested_at=o.recorded_at)
    return BadcaseOutcomes(badcase_id=badcase_id, by_model_version=list(latest.values()),
                           history=[OutcomeRead.model_validate(o, from_attributes=True) for o in rows])
