"""A service app in the test's own event loop: called through an ASGI transport (`asgi_client`, what the
service suites use), or served over real HTTP (`serve_app`, for callers that cannot use an ASGI transport:
Label Studio's webhooks, a gateway process, a client that disconnects).

The app and its lifespan (engine, object store, a NATS connection made in the background) cost about 10 ms;
the database under it is a clone of a migrated template. Each test gets its own of both: the suites change
an app's settings and state (limits, allow-lists, a Docker engine) in place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn

from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.auth import Role
from mlife_shared.settings import ServiceSettings
from tests.support.auth import as_role


@asynccontextmanager
async def asgi_client(spec: ServiceSpec, settings: ServiceSettings, role: Role = "engineer",
                      user: str = "erin") -> AsyncIterator[httpx.AsyncClient]:
    """The service's app, its lifespan running, called through an ASGI transport as `role` (`client.app` is the
    app, for tests that reach into its state)."""
    app = create_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{spec.name}/api/{spec.name}",
                                     headers=as_role(role, user), timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def serve_app(app: object, port: int, service: str) -> AsyncIterator[httpx.AsyncClient]:
    """A service app served over real HTTP (uvicorn on 127.0.0.1, in this event loop), called as an engineer."""
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
