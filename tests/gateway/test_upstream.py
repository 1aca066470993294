"""The gateway's upstream HTTP/1.1 client (gateway.proxy.upstream) against real sockets: uvicorn for the
well-behaved cases, raw asyncio servers for the answers a service only sends when something is wrong (a closed
idle connection, an early 413, a body cut off, bytes that are not HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvicorn

from gateway.proxy.upstream import BrokenAnswer, ConnectFailed, Disconnected, ReadTimeout, UpstreamPool
from tests.support.processes import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Echo:
    """A uvicorn app: echoes the body's size and MD5, counts connections; a few paths answer otherwise."""

    def __init__(self) -> None:
        self.connections: set[tuple[str, int]] = set()
        self.open_now = 0
        self.most_open = 0
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        self.requests += 1
        self.connections.add(tuple(scope["client"]))
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            digest, size = hashlib.md5(), 0
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                digest.update(chunk)
                size += len(chunk)
                if not message.get("more_body"):
                    break
            path = scope["path"]
            if path == "/slow":
                await asyncio.sleep(0.2)
            if path == "/empty":
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            if path == "/stream":  # chunked: no Content-Length
                await send({"type": "http.response.start", "status": 200, "headers": [(b"x-kind", b"stream")]})
                for i in range(200):
                    await send({"type": "http.response.body", "body": bytes([i % 256]) * 50_000, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            body = f"{size} {digest.hexdigest()} {scope['query_string'].decode()}".encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(body)).encode()), (b"set-cookie", b"a=1"),
                                    (b"set-cookie", b"b=2")]})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.open_now -= 1


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    app = Echo()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def raw_server(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def answering(answer: bytes) -> Handler:
    """A server that reads a request head, sends `answer` as it is and hangs up."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    return handler


def pool(url: str, **kw: float) -> UpstreamPool:
    args = {"max_connections": 4, "keepalive_expiry": 2.0, "connect_timeout": 2.0, "read_timeout": 5.0, **kw}
    return UpstreamPool(url, **args)  # type: ignore[arg-type]


async def body_of(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_sequential_requests_share_one_kept_alive_connection(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url)
    for i in range(20):
        r = await p.request(b"GET", p.target(b"/x", b"i=%d" % i), [])
        assert r.status == 200 and (await r.read()).endswith(b" i=%d" % i)
    assert len(app.connections) == 1 and app.requests == 20
    assert p.stats() == {"idle": 1, "busy": 0}
    await p.close()


async def test_bodies_with_and_without_a_length_arrive_whole_both_ways(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url)
    blob = os.urandom(3 * 1024 * 1024)
    parts = [blob[i:i + 65536] for i in range(0, len(blob), 65536)]
    want = f"{len(blob)} {hashlib.md5(blob).hexdigest()}".encode()
    sized = await p.request(b"POST", b"/up", [], body_of(parts), len(blob))
    chunked = await p.request(b"PUT", b"/up", [], body_of(parts), None)
    assert (await sized.read()).startswith(want) and (await chunked.read()).startswith(want)
    streamed = await p.request(b"GET", b"/stream", [])
    got = b"".join([c async for c in streamed.aiter_raw()])
    assert streamed.header(b"x-kind") == b"stream" and streamed.header(b"transfer-encoding") == b"chunked"
    assert got == b"".join(bytes([i % 256]) * 50_000 for i in range(200))  # 10 MB, paused and resumed
    again = await p.request(b"GET", b"/after", [])
    assert again.status == 200 and await again.read()
    assert len(app.connections) == 1  # paused and resumed, the 10 MB answer's connection carried the next one
    await p.close()


async def test_head_204_and_multiple_cookies(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url)
    head = await p.request(b"HEAD", b"/x", [])
    assert head.status == 200 and await head.read() == b"" and head.header(b"content-length") is not None
    empty = await p.request(b"DELETE", b"/empty", [])
    assert empty.status == 204 and await empty.read() == b""
    bare = await p.request(b"HEAD", b"/empty", [])  # no length, no chunking: still nothing to wait for
    assert bare.status == 204 and await bare.read() == b""
    plain = await p.request(b"GET", b"/x", [])
    assert [v for k, v in plain.headers if k == b"set-cookie"] == [b"a=1", b"b=2"]
    await plain.read()
    assert len(app.connections) == 1  # neither a HEAD nor a 204 cost the connection
    await p.close()


async def test_at_most_max_connections_in_flight_and_the_rest_wait(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url, max_connections=2)

    async def one(i: int) -> int:
        r = await p.request(b"GET", b"/slow", [])
        await r.read()
        return r.status

    assert await asyncio.gather(*(one(i) for i in range(8))) == [200] * 8
    assert app.most_open == 2 and len(app.connections) == 2
    await p.close()


async def test_an_answer_left_unread_costs_its_connection_only(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url, max_connections=1)
    streamed = await p.request(b"GET", b"/stream", [])
    async for _ in streamed.aiter_raw():
        break  # the caller went away after the first chunk
    r = await p.request(b"GET", b"/x", [])  # the one slot was freed
    assert r.status == 200
    await r.read()
    assert len(app.connections) == 2
    await p.close()


async def test_idle_connections_expire_before_the_service_drops_them(echo: tuple[Echo, str]) -> None:
    app, url = echo
    p = pool(url, keepalive_expiry=0.1)
    await (await p.request(b"GET", b"/x", [])).read()
    await asyncio.sleep(0.3)
    await (await p.request(b"GET", b"/x", [])).read()
    assert len(app.connections) == 2
    await p.close()


async def test_a_connection_closed_while_idle_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # still "keep-alive" as far as the client was told

    server, url = await raw_server(handler)
    p = pool(url)
    for _ in range(3):
        assert await (await p.request(b"GET", b"/", [])).read() == b"ok"
        await asyncio.sleep(0.2)
        assert p.stats() == {"idle": 0, "busy": 0}
    await p.close()
    server.close()


async def test_a_request_the_service_hung_up_on_is_retried_only_without_a_body() -> None:
    """Each connection answers its first request and hangs up on its second without an answer (a service closing
    an idle connection just as the request arrives): the GET goes again on a new connection unnoticed; the POST
    is not sent twice (the service may have acted on it) and comes back as Disconnected."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answered in (True, False):
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head.split(b" ", 2)[1])
            if not answered:
                writer.close()
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    server, url = await raw_server(handler)
    p = pool(url)
    assert await (await p.request(b"GET", b"/one", [])).read() == b"ok"
    assert await (await p.request(b"GET", b"/two", [])).read() == b"ok"
    with pytest.raises(Disconnected):
        await p.request(b"POST", b"/three", [], body_of([b"data"]), 4)
    assert seen == [b"/one", b"/two", b"/two", b"/three"]
    assert p.stats() == {"idle": 0, "busy": 0}
    await p.close()
    server.close()


async def test_an_early_answer_is_returned_and_the_rest_of_the_body_not_sent() -> None:
    server, url = await raw_server(answering(
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large"))
    p = pool(url)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            await asyncio.sleep(0.005)
            yield b"x" * 10_000

    r = await p.request(b"POST", b"/files", [], endless(), None)
    assert r.status == 413 and await r.read() == b"too large"
    assert sent < 1000 and p.stats() == {"idle": 0, "busy": 0}
    await p.close()
    server.close()


async def test_informational_answers_are_skipped_and_a_body_may_end_with_the_connection() -> None:
    server, url = await raw_server(answering(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-a: 1\r\n\r\nuntil the end"))
    p = pool(url)
    r = await p.request(b"GET", b"/", [])
    assert r.status == 200 and r.headers == [(b"x-a", b"1")] and await r.read() == b"until the end"
    assert p.stats() == {"idle": 0, "busy": 0}
    await p.close()
    server.close()


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", BrokenAnswer),
    (b"SSH-2.0-OpenSSH_9.2\r\n", BrokenAnswer),
    (b"", Disconnected),
])
async def test_broken_answers_are_named(answer: bytes, error: type[Exception]) -> None:
    server, url = await raw_server(answering(answer))
    p = pool(url)
    with pytest.raises(error):
        r = await p.request(b"GET", b"/", [])
        await r.read()
    assert p.stats() == {"idle": 0, "busy": 0}
    await p.close()
    server.close()


async def test_a_silent_service_times_out_and_a_closed_port_fails_to_connect() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server, url = await raw_server(handler)
    p = pool(url, read_timeout=0.3)
    with pytest.raises(ReadTimeout):
        await p.request(b"GET", b"/", [])
    assert p.stats() == {"idle": 0, "busy": 0}
    closed = pool(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectFailed):
        await closed.request(b"GET", b"/", [])
    with pytest.raises(ConnectFailed):  # the slot of the failed attempt was given back
        await closed.request(b"GET", b"/", [])
    await p.close()
    server.close()


async def test_two_services_have_pools_of_their_own(echo: tuple[Echo, str]) -> None:
    _, url = echo
    other_app = Echo()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(other_app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    first, second = pool(url, max_connections=1), pool(f"http://127.0.0.1:{port}/prefix", max_connections=1)
    held = await first.request(b"GET", b"/stream", [])  # first's only slot is busy …
    r = await second.request(b"GET", second.target(b"/x", b""), [])  # … second is not held up by it
    assert r.status == 200 and other_app.requests == 1
    await r.read()
    await held.aclose()
    await first.close()
    await second.close()
    server.should_exit = True
    await task
