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
                                        archive_max_expanded_bytes=8 * 1024 * 1024, archive_max_entries=50,
                                        small_upload_bytes=1024 * 1024)):
        yield c


@pytest.fixture
async def dam_s3(dam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """DAM on PostgreSQL and the S3 server."""
    async for c in _client(dam_settings(dam_db, nats_url, tmp_path, small_upload_bytes=1024 * 1024, **s3_settings())):
        yield c


def _labelstudio_module():  # type: ignore[no-untyped-def]
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "labelstudio.py"
    spec = importlib.util.spec_from_file_location("mlife_labelstudio_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def labelstudio():  # type: ignore[no-untyped-def]
    """A real Label Studio (installed into .venv-labelstudio on first use), stopped after the session."""
    ls = _labelstudio_module().start()
    yield ls
    ls.stop()


WEBHOOK_SECRET = "webhook-secret-" + uuid.uuid4().hex


async def serve_app(app: object, port: int, service: str) -> AsyncIterator[httpx.AsyncClient]:
    """A service app served over real HTTP (uvicorn on 127.0.0.1, in this event loop), called as an engineer."""
    import asyncio

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, f"{service} did not start"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/{service}",
                                     headers=as_role("engineer", "erin"), timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def serve_dam(settings: Settings, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """DAM served over real HTTP, so Label Studio can call its webhook."""
    async for client in serve_app(create_app(SPEC, settings), port, "dam"):
        yield client


@pytest.fixture
async def dam_sqlite(tmp_path: Path, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """DAM in the embedded mode: a migrated SQLite file and a local object folder."""
    from mlife_shared.migrations import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'dam.db'}"
    upgrade("dam.migrations", url)
    async for c in _client(dam_settings(url, nats_url, tmp_path)):
        yield c
