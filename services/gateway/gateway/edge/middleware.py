"""The gateway's edge, as pure ASGI middleware (nothing here reads a body into memory):
Host-header allow-list, request-size limits per route class, and authentication (API token or
session cookie + CSRF) that replaces any client-sent identity with a freshly signed one."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import SERVICES, Settings
from gateway.edge.host import HostAllowList
from gateway.session.service import SessionService
from gateway.user.service import UserService
from mlife_shared.auth import IDENTITY_HEADER, sign_identity
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


class AuthMiddleware:
    """Every non-public request is authenticated here, before routing: `Authorization: Bearer <API
    token>` or the session cookie (with `X-CSRF-Token` on mutating methods). The caller's identity is
    then signed into `X-MLife-Identity` for the gateway's own routes and for the proxied service."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.cookie = settings.session_cookie_name

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
        scope = dict(scope, headers=headers)
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
        signed = sign_identity(identity, self.settings.identity_secret.get_secret_value(),
                               ttl_seconds=self.settings.identity_ttl_seconds)
        headers.append((_IDENTITY, signed.encode()))
        await self.app(scope, receive, send)

    def _metrics_scrape(self, scope: Scope, method: str) -> bool:
        """Prometheus reads the gateway's own /metrics with the metrics token, which is no API token: it
        passes here unauthenticated and the route checks it (mlife_shared.app.metrics_access)."""
        expected = self.settings.metrics_token.get_secret_value()
        if not expected or method not in ("GET", "HEAD") or scope["path"] not in _OWN_METRICS:
            return False
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())

    async def _authenticate(self, scope: Scope, method: str) -> tuple[Any, str | None] | None:
        authorization = _header(scope, b"authorization")
        cookie = self._cookie(scope)
        if not authorization and not cookie:
            return None
        db = scope["app"].state.db
        # A short transaction of its own: no session stays open while a body streams through.
        async with db.transaction() as session:
            if authorization:
                scheme, _, token = authorization.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthorized("send 'Authorization: Bearer <API token>'",
                                       headers={"WWW-Authenticate": "Bearer"})
                return await UserService(session).authenticate_token(token.strip()), None
            assert cookie is not None
            return await SessionService(session).authenticate(cookie, method=method,
                                                              csrf_header=_header(scope, CSRF_HEADER.encode()))
