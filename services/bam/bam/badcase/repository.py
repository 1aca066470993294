"""Every query of badcases, occurrences and triage changes. Full-text search uses the dialect's own
index: PostgreSQL `to_tsvector('simple', search_text)` (GIN), SQLite FTS5 (`badcase_fts`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    TextClause,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    text,
    update,
)

from bam.badcase.filters import BadcaseFilter
from bam.badcase.models import Badcase, BadcaseTag, Occurrence, TriageChange
from mlife_shared.db import cast_table
from mlife_shared.repository import Repository

BADCASE = cast_table(Badcase)  # the Core table, for executemany statements

# Columns a page of badcases never shows: not loaded (a Core row without them: touching one raises).
_NOT_LISTED = {"description_norm", "search_text", "fingerprint", "match_key", "phash", "segment_base"}
LISTED = [c for c in BADCASE.c if c.name not in _NOT_LISTED]
# Filters and sort keys on the Core columns: ORM attributes in a Core page query cost their annotation and
# comparator layers on every request and pull in the ORM's compile state.
_COLUMNS = BADCASE.c
_EQUAL_FILTERS = {name: _COLUMNS[name] for name in (
    "function", "system_version", "model_name", "model_version", "status", "severity", "source", "owner",
    "media_type", "task_id", "deployment_id", "model_version_id")} | {
    "label": _COLUMNS.ground_truth_label, "prediction": _COLUMNS.prediction_label}
SORT_COLUMNS = {name: _COLUMNS[name] for name in ("priority", "last_seen", "first_seen", "frequency", "created_at")}
_TAGGED = select(BadcaseTag.badcase_id)
_SEARCHED = func.to_tsvector(text("'simple'"), _COLUMNS.search_text)
_PAGE = select(*LISTED)  # statements are immutable: each page adds its WHERE, ORDER BY and LIMIT to a copy


def fts5_query(q: str) -> str:
    """User text as an FTS5 query that cannot be a syntax error: every word quoted, all required."""
    words = re.findall(r"\w+", q, flags=re.UNICODE)
    return " ".join('"' + w.replace('"', '""') + '"' for w in words[:32])


class BadcaseRepository(Repository):
    async def get_by_fingerprint(self, fingerprint: str) -> Badcase | None:
        """The badcase with this fingerprint, locked (PostgreSQL): the report merged into it waits for no other."""
        found: Badcase | None = await self.one(self.lock(select(Badcase).where(Badcase.fingerprint == fingerprint)))
        return found

    async def data_referenced(self, md5: str) -> bool:
        """Whether any badcase holds the data of this MD5."""
        return (await self.session.scalar(select(Badcase.id).where(Badcase.data_md5 == md5).limit(1))) is not None

    async def lock_segment_base(self, lock_id: int) -> None:
        """Serialise the reports of one segment base until the transaction ends (PostgreSQL advisory lock; SQLite
        writers are serialised already): two racing overlapping reports must find each other."""
        if self.is_postgresql:
            await self.session.execute(select(func.pg_advisory_xact_lock(lock_id)))

    async def overlapping(self, base: str, seconds: tuple[float, float] | None,
                          frames: tuple[int, int] | None) -> Sequence[Badcase]:
        """The segmented badcases of this base whose segment overlaps (closed intervals), locked, oldest first."""
        overlaps: list[ColumnElement[bool]] = []
        if seconds is not None:
            overlaps.append(and_(Badcase.segment_start <= seconds[1], Badcase.segment_end >= seconds[0]))
        if frames is not None:
            overlaps.append(and_(Badcase.frame_start <= frames[1], Badcase.frame_end >= frames[0]))
        if not overlaps:
            return []
        stmt = (select(Badcase).where(Badcase.segment_base == base, or_(*overlaps))
                .order_by(Badcase.created_at, Badcase.id))
        return (await self.session.scalars(self.lock(stmt))).all()

    async def near_duplicate_candidates(self, match_key: str, limit: int = 5000) -> Sequence[tuple[uuid.UUID, int]]:
        stmt = (select(Badcase.id, Badcase.phash).where(Badcase.match_key == match_key, Badcase.phash.is_not(None))
                .order_by(Badcase.last_seen.desc()).limit(limit))
        return [(i, phash) for i, phash in (await self.session.execute(stmt)).tuples() if phash is not None]

    async def add_badcase(self, badcase: Badcase) -> Badcase:
        """The new badcase and its tag rows."""
        await self.add(badcase)
        await self.set_tags(badcase.id, badcase.tags)
        return badcase

    async def set_tags(self, badcase_id: uuid.UUID, tags: list[str]) -> None:
        await self.session.execute(delete(BadcaseTag).where(BadcaseTag.badcase_id == badcase_id))
        for tag in tags:
            self.session.add(BadcaseTag(badcase_id=badcase_id, tag=tag))
        await self.session.flush()

    async def occurrences(self, badcase_id: uuid.UUID, limit: int = 100) -> Sequence[Occurrence]:
        stmt = (select(Occurrence).where(Occurrence.badcase_id == badcase_id)
                .order_by(Occurrence.reported_at.desc()).limit(limit))
        return (await self.session.scalars(stmt)).all()

    async def history(self, badcase_id: uuid.UUID) -> Sequence[TriageChange]:
        stmt = (select(TriageChange).where(TriageChange.badcase_id == badcase_id)
                .order_by(TriageChange.changed_at))
        return (await self.session.scalars(stmt)).all()

    def conditions(self, f: BadcaseFilter) -> list[ColumnElement[bool] | TextClause]:
        c: list[ColumnElement[bool] | TextClause] = []
        for name, column in _EQUAL_FILTERS.items():
            value = getattr(f, name)
            if value:
                c.append(column == value)
        if f.min_priority is not None:
            c.append(_COLUMNS.priority >= f.min_priority)
        if f.seen_after:
            c.append(_COLUMNS.last_seen >= f.seen_after)
        if f.seen_before:
            c.append(_COLUMNS.last_seen < f.seen_before)
        if f.has_segment is not None:
            c.append(_COLUMNS.segment_base.is_not(None) if f.has_segment else _COLUMNS.segment_base.is_(None))
        if f.tag:
            c.append(_COLUMNS.id.in_(_TAGGED.where(BadcaseTag.tag == f.tag)))
        if f.q and f.q.strip():
            c.append(self._search(f.q))
        return c

    def _search(self, q: str) -> ColumnElement[bool] | TextClause:
        if self.is_postgresql:
            return _SEARCHED.op("@@")(func.websearch_to_tsquery(text("'simple'"), q))
        query = fts5_query(q)
        if not query:
            return false()
        return text("badcase.rowid IN (SELECT rowid FROM badcase_fts WHERE badcase_fts MATCH :fts)").bindparams(
            fts=query)

    def filtered(self, f: BadcaseFilter) -> Select[Any]:
        return select(Badcase).where(*self.conditions(f))

    async def page_after(self, f: BadcaseFilter, *, sort: str, limit: int,
                         after: tuple[object, str] | None) -> Sequence[Row[Any]]:
        """A page of the filtered badcases in `sort` order, after the cursor's (value, id): Core rows of the LISTED
        columns (read like a Badcase: `row.function`), no ORM objects built for a read-only page."""
        column = SORT_COLUMNS[sort.lstrip("-")]
        desc = sort.startswith("-")
        stmt = _PAGE.where(*self.conditions(f))
        if after is not None:
            value, last_id = after
            last = uuid.UUID(last_id)
            if desc:
                stmt = stmt.where(or_(column < value, and_(column == value, _COLUMNS.id < last)))
            else:
                stmt = stmt.where(or_(column > value, and_(column == value, _COLUMNS.id > last)))
        order = (column.desc(), _COLUMNS.id.desc()) if desc else (column.asc(), _COLUMNS.id.asc())
        return await self.core_rows(stmt.order_by(*order).limit(limit))

    async def ids(self, f: BadcaseFilter, limit: int) -> Sequence[uuid.UUID]:
        stmt = select(Badcase.id).where(*self.conditions(f)).order_by(Badcase.id).limit(limit)
        return (await self.session.scalars(stmt)).all()

    async def scoring_chunk(self, after: uuid.UUID | None, limit: int) -> Sequence[Any]:
        """What the priority score needs, for `limit` badcases after `after` in id order."""
        stmt = select(Badcase.id, Badcase.function, Badcase.severity, Badcase.frequency, Badcase.last_seen,
                      Badcase.priority_score, Badcase.priority_override).order_by(Badcase.id).limit(limit)
        if after is not None:
            stmt = stmt.where(Badcase.id > after)
        return (await self.session.execute(stmt)).all()

    async def set_scores(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of `rid`, `score` and `effective` (the priority in force: the manual one or the score)."""
        if rows:
            stmt = (update(BADCASE).where(BADCASE.c.id == bindparam("rid"))
                    .values(priority_score=bindparam("score"), priority=bindparam("effective")))
            await self.session.execute(stmt, list(rows))

    async def many(self, ids: Sequence[uuid.UUID]) -> Sequence[Badcase]:
        if not ids:
            return []
        return (await self.session.scalars(select(Badcase).where(Badcase.id.in_(ids)))).all()

    async def functions_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The function of each of these badcases that exists."""
        if not ids:
            return {}
        rows = await self.session.execute(select(Badcase.id, Badcase.function).where(Badcase.id.in_(ids)))
        return {r[0]: r[1] for r in rows.all()}
