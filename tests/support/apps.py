"""A service app in the test's own event loop, served over real HTTP (for callers that cannot use an ASGI
transport: Label Studio's webhooks, a gateway process, a client that disconnects)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import uvicorn

from tests.support.auth import as_role


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
