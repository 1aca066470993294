from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from msm.app import SPEC
from tests.support.apps import asgi_client
from tests.support.auth import SECRET, FreshRole, as_role
from tests.support.msm import badcase_test_set, count, ctx, deliver, make_settings, outbox, record_testing, upload

# importable from here as before
__all__ = ["SECRET", "FreshRole", "as_role", "badcase_test_set", "count", "ctx", "deliver", "make_settings", "outbox",
           "record_testing", "upload"]


@pytest.fixture
async def msm_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("msm.migrations")


@pytest.fixture
async def msm(msm_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """MSM on a fresh PostgreSQL database, called as an engineer."""
    async with asgi_client(SPEC, make_settings(msm_db, nats_url, tmp_path)) as client:
        client.db_url = msm_db  # type: ignore[attr-defined]
        yield client
