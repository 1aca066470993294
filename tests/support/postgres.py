"""PostgreSQL for the tests: the server `scripts/testenv.py` names in MLIFE_TEST_PG_*, and migrated databases.

A service's migrations run once per test session, into a template database; every database a test asks
for is a clone of it (`CREATE DATABASE … TEMPLATE …`), which costs a file copy instead of an Alembic run.
A template must have no connection while it is cloned: the migration's engine is disposed, and the template
is then closed to connections (`ALLOW_CONNECTIONS false`) so nothing can open one by mistake."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mlife_shared.db import Database, new_id
from mlife_shared.migrations import upgrade

PG_HOST = os.environ.get("MLIFE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MLIFE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MLIFE_TEST_PG_USER", "postgres")

# mlife_tmpl_<service>_<host>_<pid>: a template left by a test run that died is recognised and dropped
_HOST_TAG = format(zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF, "06x")
_TEMPLATE_PREFIX = "mlife_tmpl_"
_templates: dict[str, str] = {}  # migrations package -> template database name
_locks: dict[str, asyncio.Lock] = {}


def pg_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")


async def _execute(*statements: str) -> None:
    conn = await _admin()
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _drop_stale_templates(conn: asyncpg.Connection) -> None:
    """Templates of earlier runs on this host whose process is gone (a run killed before its teardown). Under an
    advisory lock: two test workers starting together would otherwise drop the same one ("tuple concurrently
    updated")."""
    await conn.execute("SELECT pg_advisory_lock(hashtext('mlife-test-stale-templates'))")
    try:
        await _drop_stale_templates_locked(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('mlife-test-stale-templates'))")


async def _drop_stale_templates_locked(conn: asyncpg.Connection) -> None:
    names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{_TEMPLATE_PREFIX}%_{_HOST_TAG}_%")
    for (name,) in names:
        pid = int(name.rsplit("_", 1)[-1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            await _drop_template(conn, name)
        except PermissionError:  # alive, someone else's
            pass


async def _drop_template(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def template(migrations: str) -> str:
    """The session's template database for a service's migrations (`bam.migrations`), migrated on first use."""
    if migrations in _templates:
        return _templates[migrations]
    lock = _locks.setdefault(migrations, asyncio.Lock())
    async with lock:
        if migrations in _templates:
            return _templates[migrations]
        service = migrations.split(".")[0].replace("-", "_")
        name = f"{_TEMPLATE_PREFIX}{service}_{_HOST_TAG}_{os.getpid()}"
        conn = await _admin()
        try:
            await _drop_stale_templates(conn)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
            try:
                # Alembic's engine uses no pool and is disposed when the upgrade returns: no connection stays
                await asyncio.to_thread(upgrade, migrations, pg_url(name))
            except BaseException:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        finally:
            await conn.close()
        _templates[migrations] = name
        return name


async def create_database(migrations: str | None = None, prefix: str = "mlife_test") -> str:
    """A new database, migrated with `migrations` (a clone of its template) or empty; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{await template(migrations)}"' if migrations else ""
    await _execute(f'CREATE DATABASE "{name}"{source}')
    return name


async def drop_databases(names: Iterable[str]) -> None:
    names = list(names)
    if names:
        await _execute(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))


async def drop_templates() -> None:
    """At the end of the session."""
    if not _templates:
        return
    conn = await _admin()
    try:
        for name in _templates.values():
            await _drop_template(conn, name)
    finally:
        await conn.close()
    _templates.clear()


class _Scratch(DeclarativeBase):
    pass


class Note(_Scratch):
    """A row of text: the table of the shared data layer's own tests."""

    __tablename__ = "scratch_note"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    text: Mapped[str] = mapped_column(String(50))


@asynccontextmanager
async def scratch_database(dialect: str, folder: Path, *models: type[DeclarativeBase]) -> AsyncIterator[Database]:
    """A one-connection `Database` with the tables of `models` created, on a new PostgreSQL database (`postgresql`, dropped
    after) or a SQLite file in `folder` (`sqlite`): for tests of the shared data layer on both dialects."""
    created = [await create_database()] if dialect == "postgresql" else []
    database = Database(pg_url(created[0]) if created else f"sqlite+aiosqlite:///{folder / 'scratch.db'}",
                        pool_size=1)
    try:
        async with database.engine.begin() as conn:
            for model in models:
                table = model.__table__
                assert isinstance(table, Table)
                await conn.run_sync(table.create)
        yield database
    finally:
        await database.dispose()
        await drop_databases(created)
