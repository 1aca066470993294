"""Limits every MLife HTTP server applies before any route sees a request.

- **JSON nesting depth.** Python's `json` recurses once per `[`/`{`: a body nested a thousand levels deep
  ends in a RecursionError (a 500) wherever it is parsed. Every JSON body (no content type, or one
  naming `json`) is scanned while it streams in, in one pass that keeps three integers of state; one
  nested deeper than `max_json_depth` is refused with 422 before anything parses it.
- **Body read timeout.** A request whose body stops arriving for `http_body_timeout_seconds` gets 408
  and its connection is closed (nginx's `client_body_timeout`: the wait between two reads, so a long
  upload keeps going as long as bytes move).
- **Header read timeout.** uvicorn closes idle keep-alive connections but waits forever for the head of
  a request (slow loris). `timed_protocol` wraps uvicorn's HTTP protocol so a connection whose request
  head is not complete `http_header_timeout_seconds` after it opened (or after its previous response)
  is closed. `server_config` is the one place every MLife server gets its uvicorn settings from.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlife_shared.errors import MLifeError, Unprocessable, error_body

DEFAULT_MAX_JSON_DEPTH = 64


class JsonTooDeep(Unprocessable):
    """The JSON body is nested deeper than the server accepts."""


class BodyReadTimeout(MLifeError):
    """The request body stopped arriving."""

    status_code = 408


_INSIDE = re.compile(rb'["\\]')  # what changes the state inside a string
# Everything up to the next bracket, whole strings included (escapes followed), in one call: what is left is a
# bracket, or the quote of a string that runs past the chunk (then followed by the state machine).
_SKIP = re.compile(rb'[^"\[\]{}]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^"\[\]{}]*)*', re.S)
# Never in JSON text, and in binary data almost at once (NUL aside: json.loads reads UTF-16 and UTF-32 too).
_CONTROL = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f]")
_SPACE = b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"  # JSON whitespace, NULs and byte-order marks of any UTF


class JsonDepthScanner:
    """Nesting depth of a JSON text fed in chunks of any size; `feed` returns False once it passed `limit`.
    Only brackets outside strings count; escapes are followed across chunk boundaries. It does not validate
    the JSON (the parser does that afterwards), it only makes sure the parser will not recurse too deep.
    JSON lines count too: each line returns to depth 0.

    `sniff`: the body may not be JSON at all (no content type: a raw upload). It is scanned only if it
    starts like a nested JSON text (`[` or `{`) and only until a byte appears that JSON never holds."""

    def __init__(self, limit: int, *, sniff: bool = False) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.sniff = sniff
        self.off = False
        self.started = not sniff

    def _sniffed_off(self, data: bytes) -> bool:
        """For a body that only may be JSON: True (and scanning stops) once it shows it is not."""
        if not self.started:
            head = data.lstrip(_SPACE)
            if not head:
                return True
            self.started = True
            if head[:1] not in (b"[", b"{"):
                self.off = True
                return True
        if _CONTROL.search(data):
            self.off = True
        return self.off

    def feed(self, data: bytes, *, last: bool = False) -> bool:
        """False once the JSON nests deeper than the limit; True while it does not (or is no JSON). `last`: no
        chunk follows, so a chunk that opens too few brackets to pass the limit needs no scan (the count includes
        brackets in strings: it can only send a chunk to the scan, never let a deep one through)."""
        if self.off or (self.sniff and self._sniffed_off(data)):
            return True
        if last and self.depth + data.count(b"[") + data.count(b"{") <= self.limit:
            return True
        pos, end = 0, len(data)
        while pos < end:
            if self.in_string:
                if self.escaped:
                    self.escaped, pos = False, pos + 1
                    continue
                m = _INSIDE.search(data, pos)
                if m is None:
                    return True
                if m.group() == b"\\":
                    self.escaped = True
                else:
                    self.in_string = False
                pos = m.end()
                continue
            pos = _SKIP.match(data, pos).end()  # type: ignore[union-attr]  # (it matches the empty string too)
            if pos >= end:
                return True
            c = data[pos]
            if c == 0x22:  # '"'
                self.in_string = True
            elif c == 0x5B or c == 0x7B:  # '[' '{'
                self.depth += 1
                if self.depth > self.limit:
                    return False
            elif self.depth > 0:
                self.depth -= 1
            pos += 1
        return True


def loads_bounded(text: str | bytes, *, limit: int = DEFAULT_MAX_JSON_DEPTH, what: str = "the JSON") -> Any:
    """`json.loads` for JSON that did not come as a request body (a multipart field, an uploaded file, a
    JSON line): refuses nesting deeper than `limit` with JsonTooDeep (422) instead of a RecursionError."""
    import json

    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not JsonDepthScanner(limit).feed(raw, last=True):
        raise JsonTooDeep(f"{what} is nested deeper than {limit} levels: flatten it (the limit is {limit})")
    return json.loads(text)


def json_kind(scope: Scope) -> str | None:
    """"json" for a content type naming JSON (`application/json`, `…+json`, `application/x-ndjson`, …);
    "maybe" without a content type (FastAPI then parses JSON, but raw uploads come that way too); else None."""
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            return "json" if b"json" in value.lower().split(b";", 1)[0] else None
    return "maybe"


class BodyRefused(Exception):
    """Raised from the guarded `receive` once the body is refused (too deep, stalled): whoever reads the body
    lets it through, and the guard answers."""

    def __init__(self, error: MLifeError) -> None:
        self.error = error


class RequestBodyGuard:
    """Pure ASGI: wraps `receive` to enforce the JSON depth limit and the body read timeout. When either
    trips, whatever the app makes of the exception (FastAPI turns errors while reading a body into a
    400, the gateway's proxy into a 502) is replaced by the guard's own answer, if no response has started."""

    def __init__(self, app: ASGIApp, *, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
                 body_timeout_seconds: float | None = None) -> None:
        self.app = app
        self.max_json_depth = max_json_depth
        self.body_timeout = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = json_kind(scope)
        scanner = JsonDepthScanner(self.max_json_depth, sniff=kind == "maybe") if kind else None
        guarded = _GuardedExchange(receive, send, scanner, self.max_json_depth, self.body_timeout)
        try:
            await self.app(scope, guarded.receive, guarded.send)
        except Exception:
            if not guarded.refused or guarded.started:
                raise
        if guarded.refused and not guarded.started:
            await _send_error(send, guarded.refused[0])


class _GuardedExchange:
    """One request's `receive` (timed per chunk, its JSON depth scanned) and `send` (dropping the app's
    answer to a refusal, which the guard then answers itself)."""

    __slots__ = ("_receive", "_send", "body_done", "body_timeout", "max_json_depth", "refused", "scanner", "started")

    def __init__(self, receive: Receive, send: Send, scanner: JsonDepthScanner | None, max_json_depth: int,
                 body_timeout: float | None) -> None:
        self._receive, self._send = receive, send
        self.scanner, self.max_json_depth, self.body_timeout = scanner, max_json_depth, body_timeout
        self.refused: list[MLifeError] = []
        self.started = False
        self.body_done = False  # after the last chunk, `receive` only waits for a disconnect: never timed

    async def receive(self) -> Message:
        if self.refused:
            raise BodyRefused(self.refused[0])
        timeout = None if self.body_done else self.body_timeout
        try:
            if timeout:
                async with asyncio.timeout(timeout):  # no task per call, unlike wait_for: predict is hot
                    message = await self._receive()
            else:
                message = await self._receive()
        except TimeoutError:
            self.refused.append(BodyReadTimeout(
                f"no part of the request body arrived for {self.body_timeout:g} s; the connection is closed",
                headers={"Connection": "close"}))
            raise BodyRefused(self.refused[0]) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        if (self.scanner is not None and message["type"] == "http.request"
                and not self.scanner.feed(message.get("body", b""), last=self.body_done)):
            self.refused.append(JsonTooDeep(f"JSON nested deeper than {self.max_json_depth} levels: flatten the "
                                            f"body (the limit is {self.max_json_depth})"))
            raise BodyRefused(self.refused[0])
        return message

    async def send(self, message: Message) -> None:
        if self.refused and not self.started:
            return  # the app's answer to the refusal is dropped; the guard answers below
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _send_error(send: Send, error: MLifeError) -> None:
    import json

    body = json.dumps(error_body(type(error).__name__, error.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the server: header read timeout, concurrency bound --------------------------------------------------

def _base_protocol() -> type[asyncio.Protocol]:
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn's own fallback
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def timed_protocol(header_timeout_seconds: float, base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) with a header read timeout. Both keep the request
    being served in `self.cycle` and replace it when a new request head is complete: a timer armed when
    the connection opens, and again when a response completes, closes the connection if `cycle` has not
    changed by the time it fires (the head never completed: slow loris, or a body that trickles on after
    its response)."""
    parent: Any = base or _base_protocol()

    class HeaderTimeoutProtocol(parent):  # type: ignore[misc]  # uvicorn picks the protocol class at run time
        header_timeout = header_timeout_seconds

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            if self.transport.is_closing():
                return
            waiting_on = self.cycle
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout, waiting_on)

        def _header_timeout(self, waiting_on: object) -> None:
            if self.cycle is waiting_on and not self.transport.is_closing():
                self.logger.info("closing a connection whose request head did not arrive in %gs", self.header_timeout)
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{parent.__name__}"
    return HeaderTimeoutProtocol


def server_config(app: ASGIApp, *, host: str, port: int, settings: Any, **kw: Any) -> uvicorn.Config:
    """The uvicorn settings of every MLife server. `proxy_headers` is off: uvicorn would take the client's
    address from any `X-Forwarded-For` sent from 127.0.0.1; the gateway reads it itself, from its
    configured `trusted_proxies` only."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          timeout_graceful_shutdown=10, proxy_headers=False,
                          http=timed_protocol(settings.http_header_timeout_seconds),
                          limit_concurrency=settings.http_max_connections or None, **kw)


def run_server(app: ASGIApp, *, host: str, port: int, settings: Any) -> None:
    """`uvicorn.run` with `server_config`: blocks until SIGTERM/SIGINT; exits 3 if the server never started
    (the port is taken), as uvicorn.run does."""
    import sys

    server = uvicorn.Server(server_config(app, host=host, port=port, settings=settings))
    try:
        server.run()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    if not server.started:
        sys.exit(3)
