"""GET and HEAD requests read through `Database.reading()`: on PostgreSQL no transaction (no BEGIN/COMMIT round
trips), the same pool, and any write refused before it reaches the database; on SQLite the usual transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from mlife_shared.db import Database, WriteInReadOnlySession, new_id
from tests.support.postgres import Note, scratch_database


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(request.param, tmp_path, Note) as database:
        async with database.transaction() as session:
            session.add(Note(text="kept"))
        yield database


async def _now_twice(session) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    first = (await session.execute(text("SELECT now()" if session.bind.dialect.name == "postgresql"
                                        else "SELECT 1"))).scalar()
    await asyncio.sleep(0.01)
    second = (await session.execute(text("SELECT now()" if session.bind.dialect.name == "postgresql"
                                         else "SELECT 1"))).scalar()
    return first, second


async def test_reads_run_without_a_transaction_on_postgresql(db: Database) -> None:
    async with db.reading() as session:
        assert (await session.execute(select(Note.text))).scalars().all() == ["kept"]
        first, second = await _now_twice(session)
    if db.readers is not None:  # each statement its own: now() moves on
        assert first != second
    async with db.transaction() as session:  # a unit of work that writes still has one transaction
        first, second = await _now_twice(session)
    assert first == second


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # SQLite reads in the usual transaction
@pytest.mark.parametrize("write", ["insert", "update", "flush"])
async def test_a_write_in_a_read_is_refused_and_nothing_is_written(db: Database, write: str) -> None:
    assert db.readers is not None
    with pytest.raises(WriteInReadOnlySession):
        async with db.reading() as session:
            if write == "insert":
                await session.execute(insert(Note).values(id=new_id(), text="sneaked"))
            elif write == "update":
                await session.execute(update(Note).values(text="changed"))
            else:
                session.add(Note(text="sneaked"))
                await session.flush()
    async with db.reading() as session:
        assert (await session.execute(select(Note.text))).scalars().all() == ["kept"]
    async with db.transaction() as session:  # the pooled connection came back fit for writing
        session.add(Note(text="written"))
    async with db.reading() as session:
        assert sorted((await session.execute(select(Note.text))).scalars().all()) == ["kept", "written"]
