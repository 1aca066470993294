"""The repository base on both dialects the platform runs on: PostgreSQL (distributed) and SQLite (embedded)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mlife_shared.db import make_engine, new_id
from mlife_shared.repository import Repository
from tests.support.postgres import create_database, drop_databases, pg_url


class _Base(DeclarativeBase):  # its own metadata: not one of the services'
    pass


class Thing(_Base):
    __tablename__ = "repository_base_thing"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    extra: Mapped[Any] = mapped_column(JSON, nullable=True)


class Things(Repository):
    async def by_name(self, name: str) -> Thing | None:
        return await self.one(select(Thing).where(Thing.name == name))


@pytest.fixture(params=["postgresql", "sqlite"])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    created: list[str] = []
    if request.param == "postgresql":
        created.append(await create_database())
        url = pg_url(created[0])
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'things.db'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Thing.metadata.create_all, tables=[Thing.__table__])
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()
        await drop_databases(created)


async def test_add_get_and_page_on_both_dialects(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        things = Things(session)
        added = [await things.add(Thing(name=f"t{i:02d}")) for i in range(7)]
    async with sessions() as session:
        things = Things(session)
        assert (await things.get(Thing, added[3].id)).name == "t03"
        assert await things.get(Thing, uuid.uuid4()) is None
        assert (await things.by_name("t05")).id == added[5].id
        ordered = select(Thing).order_by(Thing.name)
        first = await things.page(ordered, limit=3)
        assert [t.name for t in first.items] == ["t00", "t01", "t02"]
        assert (first.total, first.next_offset) == (7, 3)
        last = await things.page(ordered, limit=3, offset=6)
        assert [t.name for t in last.items] == ["t06"]
        assert (last.total, last.next_offset) == (7, None)
        assert (await things.page(ordered, limit=3, offset=9)).total == 7  # past the end still counts
        assert await things.count(ordered) == 7


async def test_insert_is_the_dialects_own_upsert(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        things = Things(session)
        await things.add(Thing(name="kept"))
        statement = things.insert(Thing.__table__).values(id=new_id(), name="kept").on_conflict_do_nothing()
        assert (await session.execute(statement)).rowcount == 0
        assert await things.count(select(Thing)) == 1


async def test_get_for_update_serialises_two_writers(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Two transactions rename the same row after reading it locked: neither loses the other's write
    (PostgreSQL holds the row lock; SQLite holds the database's write lock from BEGIN IMMEDIATE)."""
    async with sessions() as session, session.begin():
        row = await Things(session).add(Thing(name="0"))

    async def increment() -> None:
        async with sessions() as session, session.begin():
            thing = await Things(session).get_for_update(Thing, row.id)
            await asyncio.sleep(0.05)  # the other writer is waiting now
            thing.name = str(int(thing.name) + 1)

    await asyncio.gather(*(increment() for _ in range(4)))
    async with sessions() as session:
        assert (await Things(session).get(Thing, row.id)).name == "4"


async def test_lock_adds_for_update_only_where_rows_lock(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        things = Things(session)
        sql = str(things.lock(select(Thing)).compile(session.bind))
        assert ("FOR UPDATE" in sql) is things.is_postgresql
        assert "FOR UPDATE" not in str(things.lock(select(Thing), for_update=False).compile(session.bind))


async def test_lock_options_compile_to_postgresql_row_locks(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        things = Things(session)
        sql = str(things.lock(select(Thing), skip_locked=True, key_share=True, of=Thing).compile(session.bind))
        if things.is_postgresql:
            assert "FOR NO KEY UPDATE OF repository_base_thing SKIP LOCKED" in sql
        else:
            assert "FOR" not in sql.split("FROM", 1)[1]


async def test_json_columns_read_back_every_value_as_written(sessions: async_sessionmaker[AsyncSession]) -> None:
    """JSON columns are read by orjson, and by the standard library where orjson would differ (it reads an integer
    past 64 bits as a float): each value, in ORM objects and in Core rows, reads back exactly as it was written."""
    values: list[Any] = [{"a": [1, 2.5, None, True], "b": {"c": "é ✓"}}, [2**70 + 1, -(2**65) - 3],
                         [12345678901234567890, 2**64 - 1, 1e300], {"n": 10**30 + 7}, "text", 0.1, [], {}, 42]
    async with sessions() as session, session.begin():
        session.add_all([Thing(name=f"j{i}", extra=v) for i, v in enumerate(values)])
    async with sessions() as session:
        things = (await session.scalars(select(Thing).where(Thing.name.like("j%")).order_by(Thing.name))).all()
        assert [t.extra for t in things] == values
        rows = await Things(session).core_rows(select(Thing.__table__.c.name, Thing.__table__.c.extra)
                                               .where(Thing.__table__.c.name.like("j%")).order_by("name"))
        assert [(r.name, r.extra) for r in rows] == [(f"j{i}", v) for i, v in enumerate(values)]
