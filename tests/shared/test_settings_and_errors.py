"""Settings without default secrets outside development, and the single error shape."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bam.config import Settings as BamSettings
from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.errors import NotFound


def test_production_refuses_to_start_without_an_identity_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLIFE_IDENTITY_SECRET", raising=False)
    with pytest.raises(ValidationError, match="MLIFE_IDENTITY_SECRET is required"):
        BamSettings(environment="production", home=tmp_path)


def test_development_generates_a_private_secret_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLIFE_IDENTITY_SECRET", raising=False)
    first = BamSettings(environment="development", home=tmp_path).identity_secret.get_secret_value()
    second = BamSettings(environment="development", home=tmp_path).identity_secret.get_secret_value()
    assert first == second and len(first) >= 32
    assert (tmp_path / "identity.key").stat().st_mode & 0o777 == 0o600


def test_service_prefix_beats_the_common_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLIFE_DATABASE_URL", "postgresql+asyncpg://u@db/mlife_{service}")
    monkeypatch.setenv("MLIFE_NATS_URL", "nats://common:4222")
    monkeypatch.setenv("MLIFE_BAM_NATS_URL", "nats://bam-only:4222")
    s = BamSettings(home=tmp_path)
    assert s.database_url == "postgresql+asyncpg://u@db/mlife_bam"
    assert s.nats_url == "nats://bam-only:4222"


def test_s3_needs_credentials_in_production(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MLIFE_S3_ACCESS_KEY"):
        BamSettings(environment="production", home=tmp_path, identity_secret="x" * 40, object_store="s3")


class Thing(BaseModel):
    size: int


async def test_every_error_has_the_same_shape(tmp_path: Path) -> None:
    router = APIRouter()

    @router.get("/things/{n}")
    async def get_thing(n: int) -> Thing:
        raise NotFound(f"no thing {n}")

    @router.post("/things")
    async def post_thing(thing: Thing) -> Thing:
        return thing

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    spec = ServiceSpec(name="errs", title="t", description="d", settings_cls=BamSettings, routers=lambda: [router])
    app = create_app(spec, BamSettings(home=tmp_path, environment="test", identity_secret="s" * 40))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/api/errs/things/3")
        assert r.status_code == 404 and r.json() == {"error": "NotFound", "detail": "no thing 3"}
        r = await c.post("/api/errs/things", json={"size": "big"})
        assert r.status_code == 422 and r.json()["error"] == "RequestValidationError"
        assert r.json()["detail"][0]["loc"] == ["body", "size"]
        r = await c.get("/api/errs/nowhere")
        assert r.status_code == 404 and r.json()["error"] == "NotFound"
        r = await c.get("/api/errs/boom")
        assert r.status_code == 500 and r.json() == {"error": "InternalServerError",
                                                     "detail": "an unexpected error occurred; it was logged"}


async def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """A real connection attempt to a PostgreSQL port nobody listens on (a database restarting): the client is told
    to retry (503 + Retry-After), not that the service is broken (500)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    engine = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/nothing")
    router = APIRouter()

    @router.post("/things")
    async def write() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    spec = ServiceSpec(name="errs", title="t", description="d", settings_cls=BamSettings, routers=lambda: [router])
    app = create_app(spec, BamSettings(home=tmp_path, environment="test", identity_secret="s" * 40))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/api/errs/things")
    finally:
        await engine.dispose()
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "ServiceUnavailable" and "retry" in r.json()["detail"]
    assert r.headers["retry-after"] == "2"
