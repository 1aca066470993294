"""Recording, deduplicating, triaging and retrieving badcases. Never commits: the edge does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import UploadFile
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase import byte_range, dedup, priority, segment
from bam.badcase.attachment import Attachment, data_key, store_upload
from bam.badcase.exceptions import BadcaseNotFound, InvalidReport, InvalidTransition, NoPreview, RangeNotSatisfiable
from bam.badcase.filters import BadcaseFilter, decode_cursor, encode_cursor
from bam.badcase.models import Badcase, Occurrence, TriageChange
from bam.badcase.preview import Preview, PreviewRequest, preview
from bam.badcase.repository import BadcaseRepository
from bam.badcase.schemas import BadcaseCreate, BadcaseUpdate, Status
from bam.badcase.segment import Segment, pair
from bam.config import Settings
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import BadcaseCreated, BadcaseMerged, BadcaseUpdated
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore

ALLOWED = {
    "new": {"triaged", "in_progress", "fixed", "wont_fix"},
    "triaged": {"new", "in_progress", "fixed", "wont_fix"},
    "in_progress": {"triaged", "fixed", "wont_fix"},
    "fixed": {"in_progress", "regressed"},
    "wont_fix": {"triaged", "in_progress"},
    "regressed": {"triaged", "in_progress", "fixed"},
}


UNASSIGNED = "unassigned"
RESCORE_CHUNK = 5000
RESCORE_TOLERANCE = 0.005  # 0.5 %


def function_of(declared: str | None) -> str:
    """The function an event files its badcases under: the declared one, never a guess (`unassigned` when absent)."""
    return declared.strip() if declared and declared.strip() else UNASSIGNED


TRIAGE_FIELDS = {"status": "status", "priority": "priority_override", "severity": "severity", "owner": "owner",
                 "tags": "tags", "description": "description"}
NULLABLE = {"priority", "owner"}


@dataclass
class ReportContext:
    reporter: str | None
    source: str
    event_id: uuid.UUID | None = None
    correlation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Keys:
    base: str  # the fingerprint without a segment (dedup rule 1)
    match_key: str
    fingerprint: str  # the unique one: the base, or the base and the first segment


@dataclass(frozen=True)
class NewData:
    refs: list[dict[str, Any]]
    md5: str | None
    media: str | None
    phash: int | None
    stored: bool  # the file is in BAM's objects (uploaded with the report)
    segment: Segment


def segment_of(b: Badcase) -> Segment:
    return Segment(seconds=pair(b.segment_start, b.segment_end), frames=pair(b.frame_start, b.frame_end),
                   duration=b.duration)


def set_segment(b: Badcase, seg: Segment) -> None:
    b.segment_start, b.segment_end = seg.seconds or (None, None)
    b.frame_start, b.frame_end = seg.frames or (None, None)


def best_overlap(candidates: Sequence[Badcase], seg: Segment) -> Badcase | None:
    """The candidate the report overlaps most (seconds first, then frames); the oldest on a tie."""
    def amount(b: Badcase) -> tuple[float, float]:
        mine = segment_of(b)
        by_seconds = dedup.overlap(mine.seconds, seg.seconds) if mine.seconds and seg.seconds else -1.0
        by_frames = dedup.overlap(mine.frames, seg.frames) if mine.frames and seg.frames else -1.0
        return (by_seconds, by_frames)

    best: Badcase | None = None
    for b in candidates:  # oldest first
        if best is None or amount(b) > amount(best):
            best = b
    return best


@dataclass
class Recorded:
    badcase: Badcase
    merged: bool


class BadcaseService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = BadcaseRepository(session)

    def _priority_score(self, *, function: str, frequency: int, severity: str, last_seen: datetime,
                        now: datetime) -> float:
        return priority.score(frequency=frequency, severity=severity, last_seen=last_seen, now=now,
                              function_weight=self.settings.function_weights.get(function, 1.0),
                              half_life_days=self.settings.priority_half_life_days)

    def _score(self, b: Badcase, now: datetime) -> None:
        b.priority_score = self._priority_score(function=b.function, frequency=b.frequency, severity=b.severity,
                                                last_seen=b.last_seen, now=now)
        b.priority = b.priority_override if b.priority_override is not None else b.priority_score

    async def rescore_all(self, now: datetime | None = None) -> int:
        """Re-score every badcase, a chunk of rows at a time in id order; returns how many rows changed.

        Recency decays while nobody touches a badcase, and function weights change with the configuration, so
        BAM's worker runs this periodically (`MLIFE_BAM_RESCORE_INTERVAL_SECONDS`, default one hour). A row is
        written only when its score moved by more than RESCORE_TOLERANCE, so a run over a quiet database writes
        little. A manual priority stays in force (only `priority_score` moves). No event is sent: the score is
        derived data, not a triage decision."""
        now = now or utcnow()
        changed, after = 0, None
        while rows := await self.repo.scoring_chunk(after, RESCORE_CHUNK):
            updates = []
            for r in rows:
                new = self._priority_score(function=r.function, frequency=r.frequency, severity=r.severity,
                                           last_seen=r.last_seen, now=now)
                if abs(new - r.priority_score) > RESCORE_TOLERANCE * max(abs(r.priority_score), 1e-6):
                    updates.append({"rid": r.id, "score": new,
                                    "effective": r.priority_override if r.priority_override is not None else new})
            await self.repo.set_scores(updates)
            changed += len(updates)
            after = rows[-1].id
        return changed

    async def record(self, report: BadcaseCreate, ctx: ReportContext,
                     attachment: Attachment | None = None) -> Recorded:
        refs = [r.model_dump(exclude_none=True) for r in report.data]
        md5 = attachment.md5 if attachment else next((r["value"] for r in refs if r["kind"] == "md5"), None)
        if attachment and not any(r["kind"] == "md5" and r["value"] == attachment.md5 for r in refs):
            refs.insert(0, {"kind": "md5", "value": attachment.md5, "media_type": attachment.media_type})
        media = attachment.media_type if attachment else next((r.get("media_type") for r in refs
                                                               if r.get("media_type")), None)
        if media is None and report.frame_start is not None:
            media = "video"  # only video has frames
        seg = segment.of_report(report, media, attachment.info if attachment else None, has_data=bool(refs))
        base = dedup.fingerprint(report.function, md5, refs, report.ground_truth, report.prediction,
                                 report.features)
        match_key = dedup.match_key(report.function, report.ground_truth, report.prediction)
        phash = attachment.phash if attachment else None
        key = Keys(base, match_key, dedup.segment_fingerprint(base, seg.seconds, seg.frames) if seg.present else base)

        if seg.present:
            await self.repo.lock_segment_base(dedup.lock_id(base))
            existing = best_overlap(await self.repo.overlapping(base, seg.seconds, seg.frames), seg)
        else:
            existing = await self._find(base, match_key, phash)
        if existing is None:
            try:
                async with self.session.begin_nested():
                    created = await self._create(report, ctx, NewData(refs, md5, media, phash, attachment is not None,
                                                                      seg), key)
                return Recorded(created, merged=False)
            except IntegrityError:
                # A concurrent report of the same badcase won the insert: merge into it instead.
                existing = await self.repo.get_by_fingerprint(key.fingerprint)
                if existing is None:
                    raise
        if attachment is not None and existing.data_md5 == attachment.md5:
            existing.data_stored = True  # named by MD5 before, its file is in BAM now
            existing.media_type = existing.media_type or attachment.media_type
        await self._merge(existing, report, ctx, seg)
        return Recorded(existing, merged=True)

    async def _find(self, fingerprint: str, match_key: str, phash: int | None) -> Badcase | None:
        found = await self.repo.get_by_fingerprint(fingerprint)
        if found is not None or phash is None:
            return found
        best: tuple[int, uuid.UUID] | None = None
        for candidate_id, candidate_hash in await self.repo.near_duplicate_candidates(match_key):
            distance = dedup.hamming(phash, candidate_hash)
            if distance <= dedup.NEAR_DUPLICATE_BITS and (best is None or distance < best[0]):
                best = (distance, candidate_id)
        return await self.repo.get_for_update(Badcase, best[1]) if best else None

    async def _create(self, report: BadcaseCreate, ctx: ReportContext, data: NewData, key: Keys) -> Badcase:
        now = utcnow()
        refs, md5, media, phash, seg = data.refs, data.md5, data.media, data.phash, data.segment
        b = Badcase(
            id=uuid.uuid4(), function=report.function.strip(), system_version=report.system_version,
            model_name=report.model_name, model_version=report.model_version, source=ctx.source,
            reporter=ctx.reporter, client_id=report.client_id, device_id=report.device_id,
            description=report.description, description_norm=dedup.normalise_text(report.description),
            tags=report.tags, data_refs=refs, data_md5=md5, media_type=media, phash=phash,
            prediction=report.prediction, ground_truth=report.ground_truth,
            prediction_label=dedup.label_of(report.prediction), ground_truth_label=dedup.label_of(report.ground_truth),
            fingerprint=key.fingerprint, match_key=key.match_key, status="new", severity=report.severity, frequency=1,
            first_seen=now, last_seen=now, created_at=now, updated_at=now, features=report.features,
            task_id=report.task_id, deployment_id=report.deployment_id, model_version_id=report.model_version_id,
            duration=seg.duration, segment_base=key.base if seg.present else None, data_stored=data.stored)
        set_segment(b, seg)
        b.search_text = search_text(b.description_norm, b.tags)
        self._score(b, now)
        await self.repo.add_badcase(b)
        await self.repo.add(self._occurrence(b.id, report, ctx, now, seg))
        await outbox.add(self.session, BadcaseCreated(
            badcase_id=b.id, function=b.function, source=ctx.source, model_name=b.model_name,
            model_version=b.model_version, priority=b.priority, task_id=b.task_id, deployment_id=b.deployment_id,
            model_version_id=b.model_version_id), **(ctx.correlation or {}))
        return b

    async def _merge(self, b: Badcase, report: BadcaseCreate, ctx: ReportContext, seg: Segment) -> None:
        now = utcnow()
        if seg.present:
            set_segment(b, segment_of(b).union(seg))
        if b.duration is None and seg.duration is not None:
            b.duration = seg.duration
        b.frequency += 1
        b.last_seen = now
        b.updated_at = now
        new_tags = [t for t in report.tags if t not in b.tags]
        if new_tags:
            b.tags = [*b.tags, *new_tags]
            b.search_text = search_text(b.description_norm, b.tags)
            await self.repo.set_tags(b.id, b.tags)
        self._score(b, now)
        occurrence = await self.repo.add(self._occurrence(b.id, report, ctx, now, seg))
        await outbox.add(self.session, BadcaseMerged(badcase_id=b.id, occurrence_id=occurrence.id,
                                                     frequency=b.frequency), **(ctx.correlation or {}))

    @staticmethod
    def _occurrence(badcase_id: uuid.UUID, report: BadcaseCreate, ctx: ReportContext, now: datetime,
                    seg: Segment) -> Occurrence:
        seconds, frames = seg.seconds or (None, None), seg.frames or (None, None)
        return Occurrence(segment_start=seconds[0], segment_end=seconds[1], frame_start=frames[0],
                          frame_end=frames[1], badcase_id=badcase_id, source=ctx.source, reporter=ctx.reporter,
                          client_id=report.client_id,
                          device_id=report.device_id, model_name=report.model_name,
                          deployment_id=str(report.deployment_id) if report.deployment_id else None,
                          task_id=report.task_id, model_version_id=report.model_version_id,
                          model_version=report.model_version, description=report.description,
                          prediction=report.prediction, event_id=ctx.event_id, reported_at=now)

    async def record_with_data(self, report: BadcaseCreate, ctx: ReportContext, store: ScopedStore,
                               upload: UploadFile) -> Recorded:
        """`record` with the report's data file: stored once by MD5 in BAM's objects, images hashed for
        near-duplicate matching."""
        attachment = await store_upload(store, upload, max_bytes=self.settings.max_data_bytes)
        try:
            return await self.record(report, ctx, attachment)
        except InvalidReport:
            # Nothing partial: a report refused (its segment past the recording's end, say) leaves no file behind,
            # unless another badcase holds the same data.
            if attachment.created and not await self.repo.data_referenced(attachment.md5):
                await store.delete(data_key(attachment.md5))
            raise

    async def get(self, badcase_id: uuid.UUID, *, for_update: bool = False) -> Badcase:
        b = await (self.repo.get_for_update if for_update else self.repo.get)(Badcase, badcase_id)
        if b is None:
            raise BadcaseNotFound(f"no badcase {badcase_id}")
        return b

    async def triage(self, badcase_id: uuid.UUID, update: BadcaseUpdate, actor: str) -> Badcase:
        return await self.change(await self.get(badcase_id, for_update=True), update, actor)

    async def change(self, b: Badcase, update: BadcaseUpdate, actor: str, *,
                     correlation: dict[str, Any] | None = None) -> Badcase:
        """Triage of a badcase already loaded (locked): the allowed transitions, the history, the priority and
        `badcase.updated`. People triage through `triage`; testing and production decide through this."""
        now = utcnow()
        sent = update.model_dump(exclude_unset=True)
        if sent.get("tags") is not None:
            sent["tags"] = list(dict.fromkeys(sent["tags"]))
        before = {field: getattr(b, column) for field, column in TRIAGE_FIELDS.items()}
        changes = {k: v for k, v in sent.items() if v != before[k] and (v is not None or k in NULLABLE)}
        if not changes:
            return b
        if "status" in changes:
            self.transition(b, changes["status"], now)
        for field, value in changes.items():
            if field != "status":
                setattr(b, TRIAGE_FIELDS[field], value)
        if "tags" in changes:
            await self.repo.set_tags(b.id, b.tags)
        if "description" in changes:
            b.description_norm = dedup.normalise_text(b.description)
        b.search_text = search_text(b.description_norm, b.tags)
        b.updated_at = now
        self._score(b, now)
        await self.repo.add_all([TriageChange(badcase_id=b.id, actor=actor, field=k, old=before[k], new=v,
                                                  changed_at=now) for k, v in changes.items()])
        await outbox.add(self.session, BadcaseUpdated(badcase_id=b.id, changes=changes), **(correlation or {}))
        return b

    async def set_status(self, b: Badcase, status: Status, actor: str, *, correlation: dict[str, Any]) -> Badcase:
        """A decision of testing or production on a badcase already loaded (locked): the same transition, history
        row and `badcase.updated` as a person's triage of the status."""
        return await self.change(b, BadcaseUpdate(status=status), actor, correlation=correlation)

    @staticmethod
    def transition(b: Badcase, status: str, now: datetime) -> None:
        if status not in ALLOWED[b.status]:
            allowed = ", ".join(sorted(ALLOWED[b.status]))
            raise InvalidTransition(f"a {b.status} badcase cannot become {status}; it can become: {allowed}")
        b.status = status
        if status == "fixed":
            b.fixed_at = now
        elif status == "regressed":
            b.regressed_at = now

    async def functions_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The function of each of these badcases that exists, in one query."""
        return await self.repo.functions_of(ids)

    async def occurrences(self, badcase_id: uuid.UUID, limit: int) -> Sequence[Occurrence]:
        await self.get(badcase_id)
        return await self.repo.occurrences(badcase_id, limit)

    async def history(self, badcase_id: uuid.UUID) -> Sequence[TriageChange]:
        await self.get(badcase_id)
        return await self.repo.history(badcase_id)

    async def page(self, f: BadcaseFilter, *, sort: str, limit: int,
                   cursor: str | None) -> tuple[Sequence[Row[Any]], str | None]:
        after = decode_cursor(cursor, sort) if cursor else None
        rows = await self.repo.page_after(f, sort=sort, limit=limit + 1, after=after)
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(sort, getattr(last, sort.lstrip("-")), str(last.id))

    async def preview(self, badcase_id: uuid.UUID, store: ScopedStore,
                      request: PreviewRequest) -> tuple[Badcase, Preview]:
        b = await self.get(badcase_id)
        return b, await preview(b, store, request, max_bytes=self.settings.max_data_bytes)

    async def data(self, badcase_id: uuid.UUID, store: ScopedStore, range_header: str | None = None) -> DataAnswer:
        """The badcase's data file as stored in BAM: its MD5, size, the range served (Range header) and the bytes;
        NoPreview when BAM holds none, RangeNotSatisfiable (416) for a range past its end."""
        b = await self.get(badcase_id)
        info = await store.stat(data_key(b.data_md5)) if b.data_md5 else None
        if not b.data_md5 or info is None:
            raise NoPreview("this badcase's data is not stored in BAM")
        try:
            wanted = byte_range.parse(range_header, info.size)
        except byte_range.Unsatisfiable as exc:
            raise RangeNotSatisfiable(f"the data has {info.size} bytes: ask for a range within them",
                                      headers={"Content-Range": f"bytes */{info.size}"}) from exc
        if wanted is None:
            return DataAnswer(b.data_md5, info.size, None, await store.get(data_key(b.data_md5)))
        stream = await store.get(data_key(b.data_md5), offset=wanted.start, length=wanted.length)
        return DataAnswer(b.data_md5, info.size, wanted, stream)


@dataclass
class DataAnswer:
    md5: str
    size: int
    range: byte_range.ByteRange | None
    stream: AsyncIterator[bytes]


def search_text(description_norm: str, tags: list[str]) -> str:
    return " ".join([description_norm, *[dedup.normalise_text(t) for t in tags]])
