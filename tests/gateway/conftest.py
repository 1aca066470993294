from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import _bootstrap_admin, create
from gateway.config import Settings
from tests.gateway.upstream_stub import upstream_stub
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_PASSWORD, ADMIN_TOKEN, Service
from tests.support.platform import service_process
from tests.support.processes import free_port
from tests.support.waiting import wait_for

# importable from here as before
__all__ = ["ADMIN_PASSWORD", "ADMIN_TOKEN", "SECRET", "Service"]


@pytest.fixture(scope="session")
async def bam_service(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """The real BAM api process on a fresh PostgreSQL database, one for the session: the gateway tests only pass
    requests through it (no test reads another's data; an api process has no consumers, so no dead letters)."""
    async with service_process(tmp_path_factory.mktemp("bam-service"), "bam", nats_url=nats_url, secret=SECRET,
                               ready_path="/readyz") as service:
        yield service


@pytest.fixture
async def gateway(make_database: Callable[[str], Awaitable[str]], bam_service: Service, nats_url: str,
                  tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app (in process) with BAM up and DAM, MTT and MSM pointing at closed ports."""
    db = await make_database("gateway.migrations")
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET,
                        home=tmp_path, bam_url=bam_service.url, dam_url=closed, mtt_url=closed, msm_url=closed,
                        admin_token=ADMIN_TOKEN, admin_password=ADMIN_PASSWORD, allowed_hosts=["gateway"])
    await _bootstrap_admin(settings)
    app = create(settings)
    app.state.test_settings = settings
    async with app.router.lifespan_context(app):

        async def _nats_connected() -> bool:
            return app.state.nats is not None and app.state.nats.is_connected

        await wait_for(_nats_connected, 20, "the gateway's NATS connection")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def edge(make_database: Callable[[str], Awaitable[str]], nats_url: str,
               tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with MTT played by the stub upstream, tight limits and a short timeout."""
    db = await make_database("gateway.migrations")
    closed = f"http://127.0.0.1:{free_port()}"
    with upstream_stub() as stub:
        settings = Settings(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET,
                            home=tmp_path, bam_url=closed, dam_url=stub, mtt_url=stub, msm_url=closed,
                            admin_token=ADMIN_TOKEN, allowed_hosts=["gateway", "*.example.org"],
                            upstream_timeout_seconds=0.5, max_body_bytes=1000, max_upload_bytes=100_000)
        await _bootstrap_admin(settings)
        app = create(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as c:
                yield c

