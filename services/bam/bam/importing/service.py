"""Bulk import: every valid row is recorded as `BadcaseService.record` records one report (same fingerprint;
a match is merged: frequency + 1, the occurrence kept, new tags added, `badcase.merged`; otherwise a new badcase
and `badcase.created`; the same priority score), a chunk of rows at a time: one query finds the chunk's stored
badcases, then the new badcases, tags, occurrences and events are COPYed and merges written with executemany;
a chunk is planned while the previous one is written (`ImportService.run`).

Rows of one file that are the same badcase are merged too, in file order. Near-duplicate images do not apply:
an import carries no image bytes. Never commits: the request does, so an import is all of its valid rows or
nothing; invalid rows are skipped and reported, and any other failure (database, body too large, client gone)
rolls back every chunk already written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase import dedup, priority
from bam.badcase.exceptions import InvalidReport
from bam.badcase.schemas import BadcaseCreate
from bam.badcase.service import BadcaseService, ReportContext, search_text
from bam.config import Settings
from bam.importing.parser import RawRow
from bam.importing.repository import ExistingBadcase, ImportRepository
from bam.importing.schemas import MAX_ERRORS_SHOWN, ImportResult, RowError
from mlife_shared.db import utcnow
from mlife_shared.events import EventData
from mlife_shared.events.contracts import BadcaseCreated, BadcaseMerged
from mlife_shared.ids import random_uuid
from mlife_shared.messaging import outbox

CHUNK_ROWS = 2000
YIELD_EVERY = 50
ATTEMPTS = 3
MAX_ERROR_CHARS = 1000


@dataclass
class _Valid:
    row: int
    line: int
    report: BadcaseCreate
    refs: list[dict[str, Any]]
    md5: str | None
    media: str | None
    fingerprint: str
    match_key: str


@dataclass
class _Target(ExistingBadcase):
    """A badcase that rows of the chunk are recorded into: a stored one (locked), or one the chunk creates."""

    insert: dict[str, Any] | None = None  # the new badcase's row; None for a stored one
    new_tags: list[str] = field(default_factory=list)

    def add_tags(self, tags: list[str]) -> None:
        new = [t for t in tags if t not in self.tags]
        self.tags = [*self.tags, *new]
        self.new_tags += new


@dataclass
class _Plan:
    badcases: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    occurrences: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventData] = field(default_factory=list)
    created: int = 0
    merged: int = 0


@dataclass
class _Tally:
    rows: int = 0
    created: int = 0
    merged: int = 0
    errors: list[RowError] = field(default_factory=list)
    failed: int = 0

    def fail(self, error: RowError) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(error)

    def result(self) -> ImportResult:
        return ImportResult(rows=self.rows, created=self.created, merged=self.merged, failed=self.failed,
                            errors=self.errors, errors_not_shown=self.failed - len(self.errors))


@dataclass
class _Planned:
    """A chunk planned against the database as it was before its own writes: what to write, and the targets the
    chunk leaves behind (copies: a plan never changes the targets it was given)."""

    chunk: list[_Valid]
    plan: _Plan
    targets: dict[str, _Target]


class ImportService:
    def __init__(self, session: AsyncSession, settings: Settings, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.session = session
        self.settings = settings
        self.repo = ImportRepository(session)
        self.chunk_rows = chunk_rows

    async def run(self, rows: AsyncIterator[RawRow], reporter: str) -> ImportResult:
        """Three stages overlap on the one connection: the next chunk is read and validated while this one is
        planned, and a chunk is planned while the previous one's rows are written (PostgreSQL works while the
        process plans). Writes keep chunk order: chunk n+1's lookup runs before chunk n's writes, so the badcases
        chunk n creates or merges are taken from its plan, not looked up."""
        tally = _Tally()
        chunks: asyncio.Queue[list[_Valid] | BaseException | None] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read(rows, tally, chunks))
        pending: _Planned | None = None  # planned, not written yet
        writing: asyncio.Task[None] | None = None
        try:
            while (chunk := await chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                segmented = [v for v in chunk if v.report.has_segment]
                if segmented:  # recorded one by one against the database as written so far
                    if pending is not None:
                        await self._write_or_redo(pending, reporter, tally)
                        pending = None
                    await self._record_segmented(segmented, reporter, tally)
                    chunk = [v for v in chunk if not v.report.has_segment]
                if not chunk:
                    continue
                known = pending.targets if pending is not None else {}
                stored = await self.repo.lock_by_fingerprint({v.fingerprint for v in chunk} - known.keys())
                if pending is None:
                    pending = await self._plan(chunk, {**stored, **known}, reporter, utcnow())
                    continue
                writing = asyncio.create_task(self._write(pending, tally))
                planned = await self._plan(chunk, {**stored, **known}, reporter, utcnow())
                try:
                    await writing
                except IntegrityError:
                    # A concurrent report created one of the pending chunk's badcases after its lookup: that
                    # chunk again on its own (its savepoint is rolled back), then this one against it.
                    written = await self._record(pending.chunk, reporter, tally)
                    stored = await self.repo.lock_by_fingerprint({v.fingerprint for v in chunk} - written.keys())
                    planned = await self._plan(chunk, {**stored, **written}, reporter, utcnow())
                pending = planned
            if pending is not None:
                await self._write_or_redo(pending, reporter, tally)
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader
            if writing is not None and not writing.done():  # planning failed while the previous chunk was written
                writing.cancel()
                with suppress(BaseException):
                    await writing
        return tally.result()

    async def _read(self, rows: AsyncIterator[RawRow], tally: _Tally,
                    chunks: asyncio.Queue[list[_Valid] | BaseException | None]) -> None:
        chunk: list[_Valid] = []
        try:
            async for raw in rows:
                tally.rows += 1
                valid = validate(raw)
                if isinstance(valid, RowError):
                    tally.fail(valid)
                    continue
                chunk.append(valid)
                if len(chunk) >= self.chunk_rows:
                    await chunks.put(chunk)
                    chunk = []
                elif tally.rows % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the writer take its query results as soon as they arrive
        except Exception as exc:  # noqa: BLE001 - handed to run(), which raises it in the request's task
            await chunks.put(exc)
            return
        if chunk:
            await chunks.put(chunk)
        await chunks.put(None)

    async def _write(self, planned: _Planned, tally: _Tally) -> None:
        """The chunk's rows in a savepoint of its own (IntegrityError: nothing of it is written), then its events."""
        plan = planned.plan
        async with self.session.begin_nested():
            await self.repo.add_badcases(plan.badcases)
            await self.repo.add_tags(plan.tags)
            await self.repo.update_merged(plan.merges)
            await self.repo.add_occurrences(plan.occurrences)
        await outbox.add_many(self.session, plan.events)
        tally.created += plan.created
        tally.merged += plan.merged

    async def _write_or_redo(self, planned: _Planned, reporter: str, tally: _Tally) -> None:
        try:
            await self._write(planned, tally)
        except IntegrityError:
            await self._record(planned.chunk, reporter, tally)

    async def _record(self, chunk: list[_Valid], reporter: str, tally: _Tally) -> dict[str, _Target]:
        """One chunk on its own: looked up, planned and written, planned again after a concurrent creation.
        Returns the targets it leaves behind."""
        for attempt in range(ATTEMPTS):
            stored = await self.repo.lock_by_fingerprint({v.fingerprint for v in chunk})
            planned = await self._plan(chunk, stored, reporter, utcnow())
            try:
                await self._write(planned, tally)
                return planned.targets
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _record_segmented(self, rows: list[_Valid], reporter: str, tally: _Tally) -> None:
        """Rows with an audio/video segment, one at a time as `POST /badcases` records them: they are the same
        badcase as a stored one when their segments overlap (`dedup` rule 3), which a fingerprint cannot tell."""
        service = BadcaseService(self.session, self.settings)
        for v in rows:
            try:
                async with self.session.begin_nested():
                    recorded = await service.record(v.report, ReportContext(reporter=reporter, source="import"))
            except InvalidReport as exc:
                tally.fail(RowError(row=v.row, line=v.line, error=str(exc.message)[:MAX_ERROR_CHARS]))
                continue
            if recorded.merged:
                tally.merged += 1
            else:
                tally.created += 1

    async def _plan(self, chunk: list[_Valid], stored: dict[str, ExistingBadcase], reporter: str,
                    now: datetime) -> _Planned:
        """Pure computation (no query): yields now and then, so the previous chunk's writes and the reader move on."""
        plan = _Plan()
        targets: dict[str, _Target] = {}
        for n, v in enumerate(chunk, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            target = targets.get(v.fingerprint)
            if target is None and (found := stored.get(v.fingerprint)) is not None:
                # a copy, as stored (a target of the previous chunk: as that chunk leaves it, written before this one)
                target = targets[v.fingerprint] = _Target(
                    id=found.id, function=found.function, severity=found.severity,
                    priority_override=found.priority_override, description_norm=found.description_norm,
                    tags=list(found.tags), frequency=found.frequency)
            if target is None:
                target = targets[v.fingerprint] = self._new(v, reporter, now)
                plan.occurrences.append(_occurrence(random_uuid(), target.id, v.report, reporter, now))
                plan.events.append(BadcaseCreated(
                    badcase_id=target.id, function=target.function, source="import", model_name=v.report.model_name,
                    model_version=v.report.model_version, priority=self._priority(target, now),
                    task_id=v.report.task_id, deployment_id=v.report.deployment_id,
                    model_version_id=v.report.model_version_id))
                plan.created += 1
                continue
            target.frequency += 1
            target.add_tags(v.report.tags)
            occurrence_id = random_uuid()
            plan.occurrences.append(_occurrence(occurrence_id, target.id, v.report, reporter, now))
            plan.events.append(BadcaseMerged(badcase_id=target.id, occurrence_id=occurrence_id,
                                             frequency=target.frequency))
            plan.merged += 1
        for target in targets.values():
            self._settle(target, plan, now)
        return _Planned(chunk, plan, targets)

    def _new(self, v: _Valid, reporter: str, now: datetime) -> _Target:
        r = v.report
        description_norm = dedup.normalise_text(r.description)
        row = dict(
            id=random_uuid(), function=r.function.strip(), system_version=r.system_version, model_name=r.model_name,
            model_version=r.model_version, source="import", reporter=reporter, client_id=r.client_id,
            device_id=r.device_id, description=r.description, description_norm=description_norm, data_refs=v.refs,
            data_md5=v.md5, media_type=v.media, phash=None, prediction=r.prediction, ground_truth=r.ground_truth,
            prediction_label=dedup.label_of(r.prediction), ground_truth_label=dedup.label_of(r.ground_truth),
            fingerprint=v.fingerprint, match_key=v.match_key, status="new", severity=r.severity,
            priority_override=None, owner=None, first_seen=now, last_seen=now, created_at=now, updated_at=now,
            fixed_at=None, regressed_at=None, test_data_requested_at=None, features=r.features, task_id=r.task_id,
            deployment_id=r.deployment_id, model_version_id=r.model_version_id)
        return _Target(id=row["id"], function=row["function"], severity=r.severity, priority_override=None,
                       description_norm=description_norm, tags=list(r.tags), frequency=1, insert=row)

    def _settle(self, target: _Target, plan: _Plan, now: datetime) -> None:
        """The target's final state after the chunk: the new badcase's row, or the stored one's update."""
        score = self._score(target, now)
        values = dict(frequency=target.frequency, last_seen=now, updated_at=now, tags=target.tags,
                      search_text=search_text(target.description_norm, target.tags), priority_score=score,
                      priority=target.priority_override if target.priority_override is not None else score)
        if target.insert is not None:
            plan.badcases.append({**target.insert, **values})
            plan.tags += [{"badcase_id": target.id, "tag": t} for t in target.tags]
        else:
            plan.merges.append({"merged_id": target.id, **values})
            plan.tags += [{"badcase_id": target.id, "tag": t} for t in target.new_tags]

    def _score(self, target: _Target, now: datetime) -> float:
        return priority.score(frequency=target.frequency, severity=target.severity, last_seen=now, now=now,
                              function_weight=self.settings.function_weights.get(target.function, 1.0),
                              half_life_days=self.settings.priority_half_life_days)

    def _priority(self, target: _Target, now: datetime) -> float:
        return target.priority_override if target.priority_override is not None else self._score(target, now)


def validate(raw: RawRow) -> _Valid | RowError:
    """The row as a report `POST /badcases` would accept (source "import"), with its fingerprint."""
    if raw.error is not None or raw.fields is None:
        return RowError(row=raw.row, line=raw.line, error=raw.error or "the row cannot be read")
    if raw.fields.get("source", "import") != "import":
        return RowError(row=raw.row, line=raw.line, error="source: an imported row's source is always 'import'; "
                                                          "leave the field out")
    try:
        report = BadcaseCreate.model_validate({**raw.fields, "source": "import"})
        refs = [r.model_dump(exclude_none=True) for r in report.data]
        md5 = next((r["value"] for r in refs if r["kind"] == "md5"), None)
        fingerprint, match_key = dedup.keys(report.function, md5, refs, report.ground_truth, report.prediction,
                                            report.features)
        return _Valid(row=raw.row, line=raw.line, report=report, refs=refs, md5=md5,
                      media=next((r["media_type"] for r in refs if r.get("media_type")), None),
                      fingerprint=fingerprint, match_key=match_key)
    except ValidationError as exc:
        return RowError(row=raw.row, line=raw.line, error=describe(exc))
    except RecursionError:
        return RowError(row=raw.row, line=raw.line, error="a JSON value is nested too deeply")


def describe(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors(include_url=False)]
    text = "; ".join(parts)
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def _occurrence(occurrence_id: uuid.UUID, badcase_id: uuid.UUID, r: BadcaseCreate, reporter: str,
                now: datetime) -> dict[str, Any]:
    return dict(id=occurrence_id, badcase_id=badcase_id, source="import", reporter=reporter, client_id=r.client_id,
                device_id=r.device_id, deployment_id=str(r.deployment_id) if r.deployment_id else None,
                task_id=r.task_id, model_version_id=r.model_version_id, model_name=r.model_name,
                model_version=r.model_version, description=r.description, prediction=r.prediction, event_id=None,
                reported_at=now)
