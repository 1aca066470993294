from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from dam.app import SPEC
from dam.config import Settings
from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity

SECRET = "dam-test-secret-" + uuid.uuid4().hex


def as_role(role: Role, name: str | None = None) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), SECRET, ttl_seconds=600)}


def s3_settings() -> dict[str, object]:
    endpoint = os.environ.get("MLIFE_TEST_S3_ENDPOINT")
    assert endpoint, "MLIFE_TEST_S3_* is not set: run the tests with `make test`, which starts an S3 server"
    return dict(object_store="s3", s3_endpoint=endpoint, s3_access_key=os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
                s3_secret_key=os.environ["MLIFE_TEST_S3_SECRET_KEY"],
                s3_bucket=os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test"))


@pytest.fixture
async def dam_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("dam.migrations")


def dam_settings(dam_db: str, nats_url: str, tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(environment="test", database_url=dam_db, nats_url=nats_url, identity_secret=SECRET,
                                   home=tmp_path, object_store_path=tmp_path / "objects")
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dam/api/dam",
                                     headers=as_role("engineer", "erin"), timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def dam(dam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """DAM on a fresh PostgreSQL database and a local object folder, called as an engineer."""
    async for c in _client(dam_settings(dam_db, nats_url, tmp_path, max_upload_bytes=4 * 1024 * 1024,
                                        archive_max_expanded_bytes=8 * 1024 * 1024, archive_max_entries=50)):
        yield c


@pytest.fixture
async def dam_s3(dam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """DAM on PostgreSQL and the S3 server."""
    async for c in _client(dam_settings(dam_db, nats_url, tmp_path, **s3_settings())):
        yield c
