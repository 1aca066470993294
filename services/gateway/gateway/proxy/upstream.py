"""The gateway's HTTP/1.1 client to the services: asyncio protocols parsed by httptools (the parser uvicorn
already uses), a keep-alive pool per service, bodies streamed both ways with flow control.

httpx/httpcore did the same job with an anyio stream, an h11 state machine, a pool that polls every idle socket,
cancel scopes and trace hooks per request: about half of the gateway's CPU for a proxied call. This client does
only what a reverse proxy to known HTTP/1.1 services needs:

- a pool per service with at most `max_connections` requests in flight (more wait for a slot, up to the read
  timeout); idle connections reused newest first and dropped after `keepalive_expiry` seconds (before the
  service's own idle timeout) or as soon as the service closes them;
- the request head written in one piece; a body with a Content-Length sent as is, one without sent chunked;
  a service that answers before the body is all sent (a 413) has its answer returned, and the connection closed;
- the answer's body framed by Content-Length, chunked encoding or the connection's end; none for HEAD, 204 and
  304; informational (1xx) answers skipped;
- a request without a body on an idempotent method is retried once on a new connection when a reused one turns
  out to have been closed by the service before any answer (as browsers and Go's client do); nothing else is
  ever sent twice.

Errors: `ConnectFailed` (no connection, or no free slot in time) and `Disconnected` (closed before the answer's
head) mean the service is unavailable; `ReadTimeout` that it did not answer in time; `BrokenAnswer` that it
broke off an answer or did not speak HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})
_READ_HIGH_WATER = 256 * 1024  # bytes of an answer buffered before the service is asked to pause


class UpstreamError(Exception):
    """The exchange with the service failed."""


class ConnectFailed(UpstreamError):
    """No connection to the service could be made (or no free one in time)."""


class Disconnected(UpstreamError):
    """The service closed the connection before answering."""


class ReadTimeout(UpstreamError):
    """The service sent nothing for longer than the read timeout."""


class BrokenAnswer(UpstreamError):
    """The service broke off its answer, or did not answer in HTTP."""


class UpstreamResponse:
    """An answer's status and raw headers (lower-case names), and its body as it arrives."""

    __slots__ = ("_buffered", "_chunks", "_closed", "_conn", "_done", "_error", "_waiter", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._conn: _Connection | None = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    # --- fed by the connection
    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > _READ_HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()
        self._wake()

    def _finish(self, error: UpstreamError | None = None) -> None:
        self._done = True
        self._error = self._error or error
        self._conn = None
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- read by the caller
    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (no decoding: an encoded answer passes as it came)."""
        try:
            while True:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._buffered -= len(chunk)
                    if self._conn is not None and self._buffered <= _READ_HIGH_WATER // 4:
                        self._conn.resume_reading()
                    yield chunk
                    continue
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return
                conn = self._conn
                assert conn is not None
                self._waiter = conn.loop.create_future()
                await conn.wait(self._waiter, "the rest of the answer")
        finally:
            await self.aclose()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        """Done with the answer: an unfinished one closes its connection (it cannot carry another request)."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not self._done:
            conn.discard()
        self._chunks.clear()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a service, carrying one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.response: UpstreamResponse | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.head_only = False
        self.sent_all = False
        self._head: asyncio.Future[None] | None = None
        self._writable = True
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._framed = False  # the answer has a Content-Length or chunked encoding (else it ends with the connection)

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # bytes nobody asked for: this connection cannot be trusted with a request
            self.discard()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BrokenAnswer(f"the service's answer is not HTTP/1.1 ({exc})"))
            self.discard()
        except httptools.HttpParserUpgrade:
            self._fail(BrokenAnswer("the service switched protocols, which the gateway does not forward"))
            self.discard()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is not None and not response._done:
            if self._head is not None and self._head.done() and not self._framed:
                self._message_done()  # a body delimited by the connection's end
            elif self._head is not None and not self._head.done():
                self._fail(Disconnected("the service closed the connection before answering"))
            else:
                self._fail(BrokenAnswer("the service closed the connection in the middle of its answer"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.pool._lost(self)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        response, parser = self.response, self.parser
        assert response is not None and parser is not None
        status = parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            response.headers.clear()
            return
        response.status = status
        self._framed = any(k in (b"content-length", b"transfer-encoding") for k, _ in response.headers)
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        if self.head_only or status in (204, 304):
            self._message_done()

    def on_body(self, body: bytes) -> None:
        if self.response is not None and not self.response._done:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        response, parser = self.response, self.parser
        if response is None or parser is None or response.status == 0:
            return  # the end of an informational answer
        if not response._done:
            self._message_done()

    # --- the exchange
    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    async def wait(self, future: asyncio.Future[None], what: str) -> None:
        timeout = self.pool.read_timeout
        timer = self.loop.call_later(timeout, _expire, future, what, timeout)
        try:
            await future
        finally:
            timer.cancel()

    async def exchange(self, method: bytes, head: bytes, body: AsyncIterator[bytes] | None,
                       chunked: bool) -> UpstreamResponse:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise Disconnected("the service closed the connection before answering")
        self.response = response = UpstreamResponse(self)
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = method == b"HEAD"
        self._head = head_future = self.loop.create_future()
        self._framed = False
        self.sent_all = body is None
        transport = self.transport
        transport.write(head)
        if body is not None:
            async for chunk in body:
                if head_future.done() or self.closed:
                    break  # the service answered (or hung up) before the whole body: stop sending
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    if not self._writable:
                        self._drain = self.loop.create_future()
                        await self.wait(self._drain, "the service to take the request's body")
            else:
                if chunked and not self.closed:
                    transport.write(b"0\r\n\r\n")
                self.sent_all = True
        await self.wait(head_future, "the service's answer")
        return response

    def _message_done(self) -> None:
        response, parser = self.response, self.parser
        bodyless = self.head_only or (response is not None and response.status in (204, 304))
        # Fit for another request: the service keeps it open, the whole request went up, and the answer's end was
        # known from its framing (an answer delimited by the connection's end leaves nothing to reuse).
        if parser is None or self.closed or not self.sent_all:
            reusable = False
        elif bodyless:  # llhttp would expect an unframed body to end with the connection
            reusable = parser.get_http_version() == "1.1" and not any(
                k == b"connection" and b"close" in v.lower() for k, v in (response.headers if response else ()))
        else:
            reusable = self._framed and parser.should_keep_alive()
        self.response = None
        self.parser = None
        if response is not None:
            response._finish()
        if reusable:
            self.resume_reading()
            self.pool._release(self)
        else:
            self.discard()

    def _fail(self, error: UpstreamError) -> None:
        response = self.response
        self.response = None
        self.parser = None
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if response is not None:
            response._finish(error)

    def discard(self) -> None:
        """Close the connection; its slot in the pool is freed once."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self.pool._lost(self)


def _expire(future: asyncio.Future[None], what: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(ReadTimeout(f"no answer within {timeout:g} s waiting for {what}"))


class UpstreamPool:
    """The connections to one service."""

    def __init__(self, base_url: str, *, max_connections: int, keepalive_expiry: float, connect_timeout: float,
                 read_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/").encode()
        self.authority = parts.netloc.rsplit("@", 1)[-1].encode()
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._holders: set[_Connection] = set()  # connections holding a slot (an exchange not yet finished)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _bind(self) -> None:
        """The pool's state belongs to one event loop; a new loop (a new app run in the same process) starts
        afresh."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._idle = []
            self._holders = set()
            self._slots = asyncio.Semaphore(self.max_connections)

    def target(self, path: bytes, query: bytes) -> bytes:
        return self.prefix + path + (b"?" + query if query else b"")

    async def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: AsyncIterator[bytes] | None = None, content_length: int | None = None) -> UpstreamResponse:
        """Sends the request and returns once the answer's head is in; its body is read from the response.
        `headers` must not carry Host, Content-Length or Transfer-Encoding: they are set here."""
        lines = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self.authority, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        chunked = body is not None and content_length is None
        if chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        elif content_length is not None:
            lines.append(b"content-length: %d\r\n" % content_length)
        lines.append(b"\r\n")
        head = b"".join(lines)
        self._bind()
        await self._take_slot()
        retry = body is None and method in _IDEMPOTENT
        while True:
            conn, reused = await self._connection()
            try:
                return await conn.exchange(method, head, body, chunked)
            except Disconnected:
                conn.discard()
                if reused and retry:
                    retry = False
                    await self._take_slot()
                    continue
                raise
            except BaseException:
                conn.discard()
                raise

    async def _take_slot(self) -> None:
        assert self._slots is not None
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), self.read_timeout)
        except TimeoutError:
            raise ConnectFailed(f"all {self.max_connections} connections stayed busy for "
                                f"{self.read_timeout:g} s") from None

    async def _connection(self) -> tuple[_Connection, bool]:
        """An idle connection (newest first), or a new one; the caller holds a slot, now the connection's."""
        loop = self.loop
        now = loop.time()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or now - conn.idle_since > self.keepalive_expiry:
                conn.discard()  # popped from the idle list and holding no slot: only closed
                continue
            self._holders.add(conn)
            return conn, True
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self._free_slot()
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port} ({reason})") from exc
        except BaseException:
            self._free_slot()
            raise
        self._holders.add(conn)
        return conn, False

    def _free_slot(self) -> None:
        assert self._slots is not None
        self._slots.release()

    def _release(self, conn: _Connection) -> None:
        """An exchange ended with the connection fit for another."""
        if conn in self._holders:
            self._holders.discard(conn)
            conn.idle_since = self.loop.time()
            self._idle.append(conn)
            self._free_slot()

    def _lost(self, conn: _Connection) -> None:
        """The connection is closed: out of the idle list, and its slot freed if it held one."""
        if conn in self._holders:
            self._holders.discard(conn)
            self._free_slot()
        elif conn in self._idle:
            self._idle.remove(conn)

    async def close(self) -> None:
        for conn in [*self._idle, *self._holders]:
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
                conn.closed = True
        self._idle.clear()

    def stats(self) -> dict[str, Any]:
        return {"idle": len(self._idle), "busy": len(self._holders)}
