"""Async database access. The edge (request dependency, consumer runner, relay) owns the transaction:
repositories and services only `flush()`; nothing else commits."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, MetaData, Table, TypeDecorator, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both PostgreSQL and SQLite (which forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def cast_table(model: type[Base]) -> Table:
    """A mapped class's Table, typed as one (`__table__` is typed as the wider FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def dialect_name(session: AsyncSession) -> str:
    """"postgresql" or "sqlite": the dialect of the connection the session runs on."""
    return session.get_bind().dialect.name


def is_postgres(url_or_session: Any) -> bool:
    if isinstance(url_or_session, AsyncSession):
        return dialect_name(url_or_session) == "postgresql"
    return str(url_or_session).startswith("postgresql")


_LONG_NUMBER = re.compile(r"\d{20}")


def json_loads(text: str) -> Any:
    """JSON columns as read: orjson (the standard library's decoder was 7 % of the CPU of a 50-row badcase page),
    and the standard library where orjson differs: it turns an integer past 64 bits into a float (so a text with
    20 digits in a row goes to the standard library) and refuses an infinity written as 1e999. Every stored
    value reads back as it did."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, poolclass=NullPool if ":memory:" not in url else None,
                                     connect_args={"timeout": 30}, json_deserializer=json_loads)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: SQLite's deferred BEGIN deadlocks read-then-write transactions.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip per checkout (~15 % of a small transaction); a connection
    # broken by a database restart fails once and is replaced, and the relay and consumers retry.
    # JIT compilation costs 0.2–4 s on the analytic queries (stats at 1M rows) and saves nothing here.
    # A small pool (the tests' stacks keep 1 per engine) still serves a burst: overflow connections close on return.
    return create_async_engine(url, pool_size=pool_size, max_overflow=max(pool_size, 10), pool_recycle=1800,
                               connect_args={"server_settings": {"jit": "off"}}, json_deserializer=json_loads)


class WriteInReadOnlySession(RuntimeError):
    """A write through a session of `Database.reading()`: a programming error (a GET route that writes)."""


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement_writes(state: ORMExecuteState) -> None:
    if state.session.info.get("read_only") and (state.is_insert or state.is_update or state.is_delete):
        raise WriteInReadOnlySession("a read-only unit of work (a GET or HEAD request) tried to write")


@event.listens_for(Session, "before_flush")
def _refuse_flushed_writes(session: Session, *_: Any) -> None:
    if session.info.get("read_only") and (session.new or session.dirty or session.deleted):
        raise WriteInReadOnlySession("a read-only unit of work (a GET or HEAD request) tried to write")


_DEFERRED = "mlife_deferred"


class DeferredWorkNotRun(RuntimeError):
    """A session committed with deferred work pending: commit through `Database.transaction()`."""


def defer(session: AsyncSession, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
    """`work` to run once at the end of this unit of work, in its transaction, just before it commits. A later
    deferral under the same key replaces the earlier one and takes its turn after the work deferred before it:
    a consumer's batch of events that each append to one standing set freezes it once, at its last version,
    instead of once an event. Its failure rolls the whole unit back, as the handler's own would."""
    pending: dict[Hashable, Callable[[], Awaitable[None]]] = session.info.setdefault(_DEFERRED, {})
    pending.pop(key, None)
    pending[key] = work


async def run_deferred(session: AsyncSession) -> None:
    """Run the unit's deferred work (work may defer more); `Database.transaction()` calls it before commit."""
    pending: dict[Hashable, Callable[[], Awaitable[None]]] | None = session.info.get(_DEFERRED)
    while pending:
        await session.flush()
        work = pending.pop(next(iter(pending)))
        await work()


@event.listens_for(Session, "before_commit")
def _refuse_unrun_deferred(session: Session) -> None:
    if session.info.get(_DEFERRED):
        raise DeferredWorkNotRun(f"{len(session.info[_DEFERRED])} deferred work(s) pending at commit: a unit of "
                                 "work with deferred work commits through Database.transaction()")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads on PostgreSQL: the same pool, each connection in autocommit while the session holds it, so a read
        # costs no BEGIN and COMMIT round trips (under READ COMMITTED each statement had its own snapshot anyway).
        # Writes through such a session are refused before they reach the database (the listeners above).
        self.readers = (async_sessionmaker(self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                                           expire_on_commit=False, autoflush=False, info={"read_only": True})
                        if not url.startswith("sqlite") else None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any exception."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await run_deferred(session)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that only reads: no transaction on PostgreSQL (see `readers`), `transaction()` on
        SQLite."""
        if self.readers is None:
            async with self.transaction() as session:
                yield session
            return
        async with self.readers() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
