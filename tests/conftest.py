"""Real servers for the tests: PostgreSQL, NATS JetStream and S3 come from `scripts/testenv.py`
(started by `make test` when they are not already running); their addresses arrive in MLIFE_TEST_*."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from mlife_shared.migrations import upgrade

PG_HOST = os.environ.get("MLIFE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MLIFE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MLIFE_TEST_PG_USER", "postgres")
NATS_URL = os.environ.get("MLIFE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@pytest.fixture(scope="session")
def nats_url() -> str:
    return NATS_URL


@pytest.fixture
async def make_database() -> AsyncIterator[Callable[[str], str]]:
    """Create a fresh PostgreSQL database migrated with a service's migrations; dropped afterwards."""
    created: list[str] = []

    async def _make(migrations: str) -> str:
        name = f"mlife_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        url = pg_url(name)
        upgrade(migrations, url)
        return url

    names: list[str] = created
    yield _make  # type: ignore[misc]
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
