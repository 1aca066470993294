from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from dam.app import SPEC
from dam.config import Settings
from tests.dam.helpers import WEBHOOK_SECRET, dam_settings, serve_dam
from tests.support.apps import asgi_client, serve_app
from tests.support.auth import SECRET, as_role
from tests.support.objects import s3_settings
from tests.support.processes import exclusive

# importable from here as before
__all__ = ["SECRET", "WEBHOOK_SECRET", "as_role", "dam_settings", "s3_settings", "serve_app", "serve_dam"]


@pytest.fixture
async def dam_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("dam.migrations")


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(SPEC, settings) as client:
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
    script = _labelstudio_module()
    with exclusive("venv-labelstudio"):  # pytest-xdist workers: one installs, the other waits
        script.ensure_installed()
    # A password that begins with "-" (secrets.token_urlsafe makes one now and then): it must reach Label Studio
    # as a value, not be taken for an option (it once failed a CI run this way).
    from mlife.labelstudio import USERNAME, Login

    ls = script.start(login=Login(USERNAME, "-" + secrets.token_urlsafe(16), secrets.token_hex(20)))
    yield ls
    ls.stop()


@pytest.fixture
async def dam_sqlite(tmp_path: Path, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """DAM in the embedded mode: a migrated SQLite file and a local object folder."""
    from mlife_shared.migrations import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'dam.db'}"
    upgrade("dam.migrations", url)
    async for c in _client(dam_settings(url, nats_url, tmp_path)):
        yield c
