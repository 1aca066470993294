from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from mlife_shared.app import create_app
from msm.app import SPEC
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
    app = create_app(SPEC, make_settings(msm_db, nats_url, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://msm/api/msm",
                                     headers=as_role("engineer", "erin")) as client:
            client.app = app  # type: ignore[attr-defined]
            client.db_url = msm_db  # type: ignore[attr-defined]
            yield client
