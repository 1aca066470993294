from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bam.app import SPEC
from bam.config import Settings
from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity

SECRET = "bam-test-secret-" + uuid.uuid4().hex


def as_role(role: Role, name: str | None = None) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), SECRET)}


@pytest.fixture
async def bam_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("bam.migrations")


@pytest.fixture
async def bam(bam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """BAM on a fresh PostgreSQL database, called as a tester."""
    settings = Settings(environment="test", database_url=bam_db, nats_url=nats_url, identity_secret=SECRET,
                        home=tmp_path, object_store_path=tmp_path / "objects",
                        function_weights={"emotion": 2.0})
    app = create_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://bam/api/bam",
                                     headers=as_role("tester", "tess")) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
