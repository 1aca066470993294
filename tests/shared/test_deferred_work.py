"""Work deferred to the end of a unit of work (`mlife_shared.db.defer`): it runs once a key (the latest deferral
of a key, in the order of deferral), in the unit's own transaction just before it commits (its failure rolls back the
whole unit), and a session committed any other way with work pending is refused. On PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mlife_shared.db import Database, DeferredWorkNotRun, defer
from tests.support.postgres import Note, scratch_database


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(request.param, tmp_path, Note) as database:
        yield database


async def _texts(db: Database) -> list[str]:
    async with db.transaction() as session:
        return sorted((await session.execute(select(Note.text))).scalars().all())


async def test_the_latest_deferral_of_a_key_runs_once_in_its_place_and_sees_the_unit_s_writes(
        db: Database) -> None:
    ran: list[str] = []

    async with db.transaction() as session:
        for i in range(3):
            session.add(Note(text=f"version {i}"))

            async def freeze(i: int = i) -> None:
                # the unit's rows are flushed before deferred work runs: it sees all three
                seen = (await session.execute(select(Note.text))).scalars().all()
                ran.append(f"freeze at version {i} seeing {len(seen)}")
                session.add(Note(text=f"frozen {i}"))

            defer(session, ("freeze", "digits"), freeze)

            async def note(i: int = i) -> None:
                ran.append(f"note {i}")

            defer(session, ("note", i), note)
        assert ran == []  # nothing runs before the unit ends

    # in order of deferral, a key's latest taking the place of its earlier ones
    assert ran == ["note 0", "note 1", "freeze at version 2 seeing 3", "note 2"]
    assert await _texts(db) == ["frozen 2", "version 0", "version 1", "version 2"]


async def test_deferred_work_may_defer_more_and_its_failure_rolls_the_whole_unit_back(db: Database) -> None:
    async with db.transaction() as session:
        async def second() -> None:
            session.add(Note(text="second"))

        async def first() -> None:
            session.add(Note(text="first"))
            defer(session, "second", second)

        defer(session, "first", first)
    assert await _texts(db) == ["first", "second"]

    async def fails() -> None:
        raise ValueError("the freeze failed")

    with pytest.raises(ValueError, match="the freeze failed"):
        async with db.transaction() as session:
            session.add(Note(text="written before the failure"))
            defer(session, "freeze", fails)
    assert await _texts(db) == ["first", "second"]


async def test_a_session_committed_outside_database_transaction_with_work_pending_is_refused(db: Database) -> None:
    async def work() -> None:
        pass

    async with db.sessionmaker() as session:
        session.add(Note(text="never committed"))
        defer(session, "freeze", work)
        with pytest.raises(DeferredWorkNotRun, match="Database.transaction"):
            await session.commit()
        await session.rollback()
    assert await _texts(db) == []
