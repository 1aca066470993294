"""Every query of the backbone tables."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult

from mlife_shared.db import UTCDateTime, cast_table, is_postgres, utcnow
from mlife_shared.messaging.models import DeadLetter, InboxEvent, OutboxEvent
from mlife_shared.repository import Repository

NOTIFY_CHANNEL = "mlife_outbox"
_OUTBOX = cast_table(OutboxEvent)
# One round trip for the row and the wake-up (Core, no ORM unit of work: half the CPU of session.add).
_INSERT_AND_NOTIFY = text(
    "WITH ins AS (INSERT INTO outbox (id, subject, envelope, created_at, attempts) "
    "VALUES (:id, :subject, CAST(:envelope AS json), :created_at, 0) RETURNING 1) "
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM ins").bindparams(
    bindparam("id", type_=Uuid), bindparam("created_at", type_=UTCDateTime))
_INSERT = text("INSERT INTO outbox (id, subject, envelope, created_at, attempts) "
               "VALUES (:id, :subject, :envelope, :created_at, 0)").bindparams(
    bindparam("id", type_=Uuid), bindparam("created_at", type_=UTCDateTime))
_INSERT_PG = text("INSERT INTO outbox (id, subject, envelope, created_at, attempts) "
                  "VALUES (:id, :subject, CAST(:envelope AS json), :created_at, 0)").bindparams(
    bindparam("id", type_=Uuid), bindparam("created_at", type_=UTCDateTime))

# COPY from this many rows: below it, one executemany costs less than COPY's own round trips.
COPY_FROM_ROWS = 64
# The outbox as COPY sees it: the envelope column takes the JSON text as it is (no serialisation of a string).
_OUTBOX_COPY = Table("outbox", MetaData(), Column("id", Uuid), Column("subject", Text), Column("envelope", Text),
                     Column("created_at", UTCDateTime), Column("attempts", Integer))


# PostgreSQL: claim the oldest unpublished rows no other relay holds AND mark them published, in one statement
# (one round trip instead of a SELECT then an UPDATE). The relay un-marks, in the same transaction, the rows
# whose PubAck failed; if none was acked it rolls the whole transaction back.
_CLAIM_AND_MARK = text(
    "UPDATE outbox AS o SET published_at = :now FROM ("
    "SELECT seq FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED) AS c "
    "WHERE o.seq = c.seq RETURNING o.seq, o.id, o.subject, CAST(o.envelope AS text)").bindparams(
    bindparam("now", type_=UTCDateTime)).columns(seq=BigInteger, id=Uuid, subject=Text, envelope=Text)


@dataclass(frozen=True)
class ClaimedEvent:
    seq: int
    id: uuid.UUID
    subject: str
    envelope_json: str


class OutboxRepository(Repository):
    async def add_event(self, event_id: uuid.UUID, subject: str, envelope_json: str, *, notify: bool) -> None:
        params = {"id": event_id, "subject": subject, "envelope": envelope_json, "created_at": utcnow()}
        await self.session.execute(_INSERT_AND_NOTIFY if notify else _INSERT, params)

    async def add_many(self, rows: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        now = utcnow()
        if len(rows) >= COPY_FROM_ROWS and self.is_postgresql:
            # A bulk import's thousands of events: one COPY (seq follows the rows' order, as the INSERTs' would).
            # The envelopes are JSON text already, so they go as text into the json column.
            await self.copy_insert(_OUTBOX_COPY, [{"id": i, "subject": s, "envelope": e, "created_at": now,
                                                   "attempts": 0} for i, s, e in rows])
            return
        stmt = _INSERT_PG if is_postgres(self.session) else _INSERT
        await self.session.execute(stmt, [{"id": i, "subject": s, "envelope": e, "created_at": now}
                                             for i, s, e in rows])

    async def notify(self) -> None:
        """Queue the relay's wake-up; PostgreSQL delivers it at commit, never for a rollback."""
        await self.session.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))

    async def claim_unpublished(self, limit: int) -> list[ClaimedEvent]:
        stmt = (select(_OUTBOX.c.seq, _OUTBOX.c.id, _OUTBOX.c.subject, cast(_OUTBOX.c.envelope, Text))
                .where(_OUTBOX.c.published_at.is_(None)).order_by(_OUTBOX.c.seq).limit(limit))
        # Two relays never publish the same row at once; each takes what the other has not locked.
        stmt = self.lock(stmt, skip_locked=True)
        return [ClaimedEvent(*row) for row in (await self.session.execute(stmt)).all()]

    async def claim_and_mark(self, limit: int) -> list[ClaimedEvent]:
        """PostgreSQL only: `claim_unpublished` and `mark_published` of the claimed rows in one statement,
        oldest first. A row whose publication then fails must be given back with `unmark`."""
        rows = (await self.session.execute(_CLAIM_AND_MARK, {"now": utcnow(), "limit": limit})).all()
        return sorted((ClaimedEvent(*row) for row in rows), key=lambda e: e.seq)

    async def unmark(self, seqs: Sequence[int], error: str) -> None:
        """Rows `claim_and_mark` marked but that were not published: unpublished again, the failure recorded."""
        if seqs:
            await self.session.execute(update(OutboxEvent).where(OutboxEvent.seq.in_(seqs)).values(
                published_at=None, attempts=OutboxEvent.attempts + 1, last_error=error[:2000]))

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self.session.execute(update(_OUTBOX).where(_OUTBOX.c.seq.in_(seqs)).values(published_at=utcnow()))

    async def record_failure(self, seqs: Sequence[int], error: str) -> None:
        if seqs:
            await self.session.execute(update(OutboxEvent).where(OutboxEvent.seq.in_(seqs))
                                       .values(attempts=OutboxEvent.attempts + 1, last_error=error[:2000]))

    async def backlog(self) -> int:
        stmt = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        return int(await self.session.scalar(stmt) or 0)

    async def purge_published(self, older_than: timedelta) -> int:
        cutoff: datetime = utcnow() - older_than
        result = await self.session.execute(delete(OutboxEvent).where(OutboxEvent.published_at.is_not(None),
                                                                      OutboxEvent.published_at < cutoff))
        return int(typing.cast(CursorResult[Any], result).rowcount or 0)  # a DELETE's result is a cursor result


# Built once: an insert that does nothing when the (consumer, event id) row exists.
_INBOX_INSERT = {True: pg_insert(cast_table(InboxEvent)).on_conflict_do_nothing(),
                 False: sqlite_insert(cast_table(InboxEvent)).on_conflict_do_nothing()}


# PostgreSQL: a batch's inbox rows as two array parameters, so the statement is the same (prepared once) for
# every batch size; a multi-row VALUES was compiled anew for each batch.
_INBOX_INSERT_MANY = text(
    "INSERT INTO inbox (consumer, event_id, subject, processed_at) "
    "SELECT :consumer, u.id, u.subject, :now FROM unnest(CAST(:ids AS uuid[]), CAST(:subjects AS text[])) "
    "AS u(id, subject) ON CONFLICT DO NOTHING RETURNING event_id").bindparams(
    bindparam("now", type_=UTCDateTime)).columns(event_id=Uuid)


class InboxRepository(Repository):
    async def record_many(self, consumer: str, events: Sequence[tuple[uuid.UUID, str]]) -> set[uuid.UUID]:
        """Insert the inbox rows of a batch in one statement; returns the ids that were new."""
        if self.is_postgresql:
            params = {"consumer": consumer, "now": utcnow(), "ids": [i for i, _ in events],
                      "subjects": [s for _, s in events]}
            return set((await self.session.execute(_INBOX_INSERT_MANY, params)).scalars().all())
        table = cast_table(InboxEvent)
        now = utcnow()
        stmt = (self.insert(table).values([{"consumer": consumer, "event_id": i, "subject": s, "processed_at": now}
                                      for i, s in events])
                .on_conflict_do_nothing().returning(table.c.event_id))
        return set((await self.session.execute(stmt)).scalars().all())

    async def record(self, consumer: str, event_id: uuid.UUID, subject: str) -> bool:
        """Insert the inbox row; False when a concurrent delivery already recorded it."""
        values = {"consumer": consumer, "event_id": event_id, "subject": subject, "processed_at": utcnow()}
        stmt = _INBOX_INSERT[is_postgres(self.session)]
        result = await self.session.execute(stmt, values)
        return bool(typing.cast(CursorResult[Any], result).rowcount)  # an INSERT's result is a cursor result


class DeadLetterRepository(Repository):
    async def list(self, *, limit: int, consumer: str | None = None,
                   state: Literal["pending", "redriven"] | None = None) -> Sequence[DeadLetter]:
        stmt = select(DeadLetter).order_by(DeadLetter.created_at.desc()).limit(limit)
        if consumer:
            stmt = stmt.where(DeadLetter.consumer == consumer)
        if state is not None:
            stmt = stmt.where(DeadLetter.redriven_at.is_(None) if state == "pending" else DeadLetter.redriven_at.is_not(None))
        return (await self.session.scalars(stmt)).all()

    async def total(self) -> int:
        """The letters still waiting for a re-drive."""
        return await self.count(select(DeadLetter).where(DeadLetter.redriven_at.is_(None)))

    async def pending_ids(self, consumer: str, limit: int) -> Sequence[uuid.UUID]:
        """The consumer's letters not re-driven yet, oldest first (the order they failed in)."""
        return (await self.session.scalars(select(DeadLetter.id).where(
            DeadLetter.consumer == consumer, DeadLetter.redriven_at.is_(None))
            .order_by(DeadLetter.created_at, DeadLetter.id).limit(limit))).all()

    async def note_failed_redrive(self, letter_id: uuid.UUID, error: str) -> None:
        await self.session.execute(update(DeadLetter).where(DeadLetter.id == letter_id).values(
            redrives=DeadLetter.redrives + 1, redrive_error=error[:10_000]))
