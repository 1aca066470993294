"""A real HTTP server standing in for a misbehaving upstream (slow, plain-text errors, FastAPI's bare
`{"detail"}`), and echoing what it received: the real services never misbehave on purpose, and the
gateway's timeouts and error wrapping must be proven against something that does."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.support.processes import free_port


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    path = scope["path"]
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    if path.endswith("/slow"):
        await asyncio.sleep(5)
    if path.endswith("/text-error"):
        status, ctype, body = 500, b"text/plain", b"upstream exploded"
    elif path.endswith("/bare-error"):
        status, ctype, body = 409, b"application/json", json.dumps({"detail": "bare detail"}).encode()
    else:
        status, ctype = 200, b"application/json"
        body = json.dumps({"path": path, "query": scope["query_string"].decode("latin-1"), "headers": headers,
                           "size": size}).encode()
    extra = [(b"set-cookie", b"upstream_session=one-callers-secret; Path=/"), (b"set-cookie", b"second=2; Path=/")
             ] if path.endswith("/set-cookie") else []
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype), *extra]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def upstream_stub() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
