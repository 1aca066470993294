"""The gateway's edge, as pure ASGI middleware (nothing here reads a body into memory):
Host-header allow-list, request-size limits per route class, and authentication (API token or
session cookie + CSRF) that replaces any client-sent identity with a freshly signed one."""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import SERVICES, Settings
from gateway.edge.host import HostAllowList
from gateway.session.service import SessionService
from gateway.user.service import UserService
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.errors import MLifeError, PayloadTooLarge, Unauthorized

CSRF_HEADER = "x-csrf-token"
_OWN_METRICS = ("/metrics", "/api/gateway/metrics")
_IDENTITY = IDENTITY_HEADER.lower().encode()
_SVC = "|".join(("gateway", *SERVICES))
# The short public allow-list: health, login, the UI's static files and the API's description (it holds
# no data; scripts and the embedded smoke test read it). Everything else needs a role.
PUBLIC = [
    ("GET", re.compile(rf"^(/api/({_SVC}))?/(healthz|readyz)$")),
    ("HEAD", re.compile(rf"^(/api/({_SVC}))?/(healthz|readyz)$")),
    ("POST", re.compile(r"^/api/gateway/login$")),
    ("GET", re.compile(r"^/api/gateway/session$")),
    ("GET", re.compile(r"^/(ui/[A-Za-z0-9_./-]+)?$")),
    ("GET", re.compile(r"^/favicon\.ico$")),
    ("GET", re.compile(r"^/(openapi\.json|docs)$")),
    ("GET", re.compile(r"^/api/gateway/events/asyncapi\.json$")),  # the event API's description, as OpenAPI's
]


def is_public(method: str, path: str) -> bool:
    return any(m == method and rx.match(path) for m, rx in PUBLIC)


async def send_error(send: Send, status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class HostAllowListMiddleware:
    """The Host header, parsed (gateway.edge.host), must name a host of `allowed_hosts`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostAllowList(settings.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"host"]
            why = "several Host headers" if len(hosts) > 1 else self.hosts.check(hosts[0] if hosts else None)
            if why is not None:
                await send_error(send, 400, "InvalidHost", f"this Host header is not served here: {why}")
                return
            # No service stores NUL characters (PostgreSQL text cannot): refuse them at the door.
            if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
                await send_error(send, 400, "BadRequest", "NUL characters (%00) are not accepted in the URL")
                return
        await self.app(scope, receive, send)


class BodyTooLarge(PayloadTooLarge):
    """The request body is larger than this route accepts."""


class BodyLimitMiddleware:
    """Refuses a declared Content-Length over the limit at once; counts streamed (chunked) bodies and
    stops them the moment they pass it. Upload routes have their own, larger, limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.upload_routes = [re.compile(p) for p in settings.upload_routes]

    def limit(self, path: str) -> int:
        if any(rx.match(path) for rx in self.upload_routes):
            return self.settings.max_upload_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await send_error(send, 400, "BadRequest", "Content-Length must be a non-negative integer")
                return
            if int(declared) > limit:
                await send_error(send, 413, "PayloadTooLarge", f"the body is {int(declared)} bytes; this route "
                                 f"accepts at most {limit}")
                return
        received = 0

        async def _receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"the body passed {limit} bytes, the most this route accepts")
            return message

        await self.app(scope, _receive, send)


_SAFE = ("GET", "HEAD", "OPTIONS")
_OWN_PREFIX = "/api/gateway/"


class AuthCache:
    """Who a credential (API token, or session cookie on a safe method) belongs to, for `seconds`: without it
    every request through the gateway costs a database transaction. A user, token or session changed through
    this gateway (any mutating request to its own routes) empties it, once the change is committed; entries
    read before that are dropped (the generation), so a revoked token, a disabled user or a new role applies
    at once here and within `seconds` on another replica."""

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.generation = 0
        self.entries: dict[tuple[str, str], tuple[float, int, Identity, str | None]] = {}

    def get(self, key: tuple[str, str]) -> tuple[Identity, str | None] | None:
        found = self.entries.get(key)
        if found is None or found[0] < time.monotonic() or found[1] != self.generation:
            return None
        return found[2], found[3]

    def put(self, key: tuple[str, str], generation: int, identity: Identity, csrf: str | None) -> None:
        if self.seconds <= 0 or generation != self.generation:
            return
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + self.seconds, generation, identity, csrf)

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()


class SignedIdentities:
    """The signed `X-MLife-Identity` of each identity, reused for the first half of its lifetime (signing is
    an HMAC plus JSON per request; a service that remembers verified tokens then verifies each once)."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self.secret, self.ttl = secret, ttl_seconds
        self.signed: dict[Identity, tuple[float, bytes]] = {}

    def __call__(self, identity: Identity) -> bytes:
        now = time.monotonic()
        found = self.signed.get(identity)
        if found is not None and found[0] > now:
            return found[1]
        token = sign_identity(identity, self.secret, ttl_seconds=self.ttl).encode()
        if len(self.signed) >= AuthCache.MAX_ENTRIES:
            self.signed.clear()
        self.signed[identity] = (now + self.ttl / 2, token)
        return token


class AuthMiddleware:
    """Every non-public request is authenticated here, before routing: `Authorization: Bearer <API
    token>` or the session cookie (with `X-CSRF-Token` on mutating methods). The caller's identity is
    then signed into `X-MLife-Identity` for the gateway's own routes and for the proxied service."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.cookie = settings.session_cookie_name
        self.cache = AuthCache(settings.auth_cache_seconds)
        self.sign = SignedIdentities(settings.identity_secret.get_secret_value(), settings.identity_ttl_seconds)

    def _cookie(self, scope: Scope) -> str | None:
        raw = _header(scope, b"cookie")
        if not raw:
            return None
        for part in raw.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie and value:
                return value
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != _IDENTITY]
        scope["headers"] = headers  # in place: the route the router records is read by the metrics outside
        state = scope.setdefault("state", {})
        method = scope.get("method", "GET")
        if is_public(method, scope["path"]) or self._metrics_scrape(scope, method):
            await self.app(scope, receive, send)
            return
        try:
            found = await self._authenticate(scope, method)
        except MLifeError as exc:
            await send_error(send, exc.status_code, type(exc).__name__, exc.message, exc.headers)
            return
        if found is None:
            await send_error(send, 401, "Unauthorized", "authentication required: send 'Authorization: Bearer "
                             "<API token>' or log in", {"WWW-Authenticate": "Bearer"})
            return
        identity, csrf = found
        state["identity"], state["csrf_token"] = identity, csrf
        headers.append((_IDENTITY, self.sign(identity)))
        if method in _SAFE or not scope["path"].startswith(_OWN_PREFIX):
            await self.app(scope, receive, send)
            return
        try:  # users, tokens, sessions may have changed (committed before the response): forget who is who
            await self.app(scope, receive, send)
        finally:
            self.cache.clear()

    def _metrics_scrape(self, scope: Scope, method: str) -> bool:
        """Prometheus reads the gateway's own /metrics with the metrics token, which is no API token: it
        passes here unauthenticated and the route checks it (mlife_shared.app.metrics_access)."""
        expected = self.settings.metrics_token.get_secret_value()
        if not expected or method not in ("GET", "HEAD") or scope["path"] not in _OWN_METRICS:
            return False
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())

    async def _authenticate(self, scope: Scope, method: str) -> tuple[Identity, str | None] | None:
        authorization = _header(scope, b"authorization")
        cookie = self._cookie(scope)
        if not authorization and not cookie:
            return None
        key: tuple[str, str] | None = None
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("send 'Authorization: Bearer <API token>'", headers={"WWW-Authenticate": "Bearer"})
            key = ("token", token.strip())
        elif method in _SAFE:  # a mutating method checks the CSRF token against the session's row
            assert cookie is not None
            key = ("cookie", cookie)
        if key is not None and (cached := self.cache.get(key)) is not None:
            return cached
        generation = self.cache.generation
        db = scope["app"].state.db
        # A short transaction of its own: no session stays open while a body streams through.
        async with db.transaction() as session:
            if key is not None and key[0] == "token":
                found: tuple[Identity, str | None] = (await UserService(session).authenticate_token(key[1]), None)
            else:
                assert cookie is not None
                found = await SessionService(session).authenticate(cookie, method=method,
                                                                   csrf_header=_header(scope, CSRF_HEADER.encode()))
        if key is not None:
            self.cache.put(key, generation, *found)
        return found
