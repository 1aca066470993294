"""Forwarding to the services: streamed both ways, the caller's identity signed into
`X-MLife-Identity`, a clear 503 naming the service when it is down."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.config import SERVICES, Settings
from gateway.edge.source import client_address
from gateway.proxy.upstream import (
    ConnectFailed,
    Disconnected,
    ReadTimeout,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from mlife_shared.errors import MLifeError, NotFound, ServiceUnavailable

try:
    import sniffio  # type: ignore[import-not-found]  # noqa: F401 - httpcore asks for it; only its absence matters
except ImportError:
    # httpcore runs `import sniffio` several times per request; anyio no longer installs it, and each failed
    # import searched sys.path again (stat calls: ~15% of the gateway's CPU per proxied request). Recorded as
    # absent, the import fails at once and httpcore takes its asyncio path as before.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "authorization", "cookie", "x-csrf-token",
              "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-request-id"}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/?%:@!$&'()*+,;=-._~"
# Request headers not sent up as they came: Host, Content-Length and Transfer-Encoding are the client's own
# (`upstream.py` sets them), Expect was answered by the gateway's server, the rest are set by the gateway.
_HOP_BY_HOP_RAW = frozenset(h.encode() for h in HOP_BY_HOP) | {b"content-length", b"expect"}
# Answer headers not sent down: hop-by-hop ones, and Date and Server, which the gateway's server adds itself.
_ANSWER_DROPPED = frozenset(h.encode() for h in HOP_BY_HOP) | {b"date", b"server"}
KEEPALIVE_EXPIRY = 2.0  # seconds; uvicorn closes an idle connection after 5
# An answer up to this size (by its Content-Length) is read whole and sent in one piece; a larger one, or one
# of unknown length, streams through.
MAX_BUFFERED_ANSWER = 64 * 1024
# Upstream error bodies are read (up to this size) to make sure they carry {"error", "detail"}.
MAX_ERROR_BODY = 256 * 1024
_ERROR_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
                422: "Unprocessable", 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                503: "ServiceUnavailable", 504: "GatewayTimeout"}


class GatewayTimeout(MLifeError):
    """The service did not answer in time."""

    status_code = 504


class SpecIndex:
    """Which methods each path of the merged OpenAPI takes, so the gateway answers 405 with `Allow`
    itself (a service would often answer 422 or 404 when another of its routes' templates matches)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.unavailable = set(doc.get("info", {}).get("x-mlife-unavailable", []))
        self.templates: list[tuple[int, re.Pattern[str], set[str]]] = []
        for template, operations in doc.get("paths", {}).items():
            rx = re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")
            methods = {m.upper() for m in operations if m.lower() in ("get", "post", "put", "patch", "delete")}
            self.templates.append((template.count("{"), rx, methods))
        self.templates.sort(key=lambda t: t[0])  # literal segments first, as the services route them

    def allowed(self, service: str, path: str) -> set[str] | None:
        """The methods of the most specific template matching `path`; None when unknown."""
        if service in self.unavailable:
            return None
        for _, rx, methods in self.templates:
            if rx.match(path):
                return methods | ({"HEAD"} if "GET" in methods else set())
        return None


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trusted = settings.trusted_networks()
        self._index: SpecIndex | None = None
        self._index_at = 0.0
        self._index_lock = asyncio.Lock()
        # `read` bounds the wait for each chunk (and for the response head), not the whole transfer:
        # a long upload or download keeps going as long as bytes move.
        timeout = httpx.Timeout(settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds)
        # A pool per service (gateway.proxy.upstream), at most `upstream_connections` requests in flight to it, every
        # connection kept alive. Idle connections are dropped here before the service drops them (uvicorn: after
        # 5 s), so a request is rarely sent on a connection the service is closing (a GET is then retried once).
        connections = settings.upstream_connections
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                              keepalive_expiry=KEEPALIVE_EXPIRY)
        # No client layers (cookie jar, default headers, auth and redirect hooks) between callers and services: a
        # cookie an upstream set would go up again with everyone's requests.
        self.pools = {s: UpstreamPool(settings.upstream(s), max_connections=connections,
                                      keepalive_expiry=KEEPALIVE_EXPIRY,
                                      connect_timeout=settings.upstream_connect_timeout_seconds,
                                      read_timeout=settings.upstream_timeout_seconds) for s in SERVICES}
        # Readiness and the merged OpenAPI (a few calls a minute) keep httpx, on connections of their own.
        self.clients = {s: httpx.AsyncClient(timeout=timeout, follow_redirects=False, limits=limits)
                        for s in SERVICES}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        for pool in self.pools.values():
            await pool.close()

    def base(self, service: str) -> str:
        if service not in SERVICES:
            raise NotFound(f"no service {service!r}; the services are {', '.join(SERVICES)}")
        return self.settings.upstream(service)

    async def spec_index(self, own: dict[str, Any]) -> SpecIndex:
        """The merged OpenAPI's paths, refreshed every 30 s (services come and go)."""
        now = time.monotonic()
        if self._index is None or now - self._index_at > 30:
            async with self._index_lock:
                if self._index is None or time.monotonic() - self._index_at > 30:
                    self._index = SpecIndex(await self.merged_openapi(own))
                    self._index_at = time.monotonic()
        return self._index

    async def forward(self, request: Request, service: str, path: str) -> Response:
        """Streams the body up and the answer down. The identity header was signed by the edge
        middleware (any client-sent one was dropped there)."""
        pool = self.pools.get(service)
        if pool is None:
            self.base(service)  # the unknown service's 404
            raise NotFound(f"no service {service!r}")
        scope = request.scope
        # The path as the client encoded it (a decoded one may hold control characters no URL can carry).
        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = pool.target(quote(raw_path.decode("latin-1"), safe=_PATH_SAFE).encode("ascii"),
                             quote(scope.get("query_string", b"").decode("latin-1"), safe=_QUERY_SAFE).encode("ascii"))
        headers: list[tuple[bytes, bytes]] = []
        host = length = None
        chunked = False
        for name, value in scope["headers"]:
            if name not in _HOP_BY_HOP_RAW:
                headers.append((name, value))
            elif name == b"host":
                host = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        headers.append((b"x-forwarded-for", client_address(scope, self.trusted).encode("latin-1")))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
        if host is not None:
            headers.append((b"x-forwarded-host", host))
        if rid := scope.get("state", {}).get("request_id"):
            headers.append((b"x-request-id", rid.encode("latin-1")))
        body = request.stream() if length is not None or chunked else None
        content_length = int(length) if length is not None and not chunked else None
        try:
            response = await pool.request(scope["method"].encode("ascii"), target, headers, body, content_length)
        except MLifeError:  # a refusal raised while the body streamed up (too large, too deep, stalled)
            raise
        except (ConnectFailed, Disconnected) as exc:
            raise ServiceUnavailable(f"the {service} service is unavailable; retry in a moment") from exc
        except ReadTimeout as exc:
            raise GatewayTimeout(f"the {service} service did not answer within "
                                 f"{self.settings.upstream_timeout_seconds:g} s") from exc
        except UpstreamError as exc:
            raise BadGateway(f"the {service} service broke the connection ({exc})") from exc
        out_headers = [(k, v) for k, v in response.headers if k not in _ANSWER_DROPPED]
        if response.status >= 400:
            return await _error_response(service, response, out_headers)
        length = response.header(b"content-length")
        if length is not None and length.isdigit() and int(length) <= MAX_BUFFERED_ANSWER:
            try:  # raw: an encoded (gzip) answer passes as it came
                answer = await response.read()
            except UpstreamError as exc:
                raise BadGateway(f"the {service} service broke the connection ({exc})") from exc
            whole = Response(status_code=response.status)
            whole.body = answer
            whole.raw_headers = out_headers
            return whole
        streamed = StreamingResponse(response.aiter_raw(), status_code=response.status,
                                     background=BackgroundTask(response.aclose))
        streamed.raw_headers = out_headers
        return streamed

    async def readiness(self) -> dict[str, str]:
        async def _one(service: str) -> tuple[str, str]:
            try:
                r = await self.clients[service].get(f"{self.base(service)}/readyz", timeout=3.0)
            except httpx.HTTPError as exc:
                return service, f"fail: unreachable ({type(exc).__name__})"
            if r.status_code == 200:
                return service, "ok"
            try:  # a load balancer in front of the service answers with its own page when no replica is up
                failing = {k: v for k, v in r.json().get("checks", {}).items() if v != "ok"} if r.content else {}
            except (ValueError, AttributeError):
                failing = {}
            return service, f"fail: {failing or r.status_code}"

        return dict(await asyncio.gather(*(_one(s) for s in SERVICES)))

    async def merged_openapi(self, own: dict[str, Any]) -> dict[str, Any]:
        """The gateway's own schema plus every service's, component names kept apart where they clash."""

        async def _fetch(service: str) -> tuple[str, dict[str, Any] | None]:
            try:
                r = await self.clients[service].get(f"{self.base(service)}/openapi.json", timeout=5.0)
                r.raise_for_status()
                return service, r.json()
            except (httpx.HTTPError, ValueError):
                return service, None

        docs = await asyncio.gather(*(_fetch(s) for s in SERVICES))
        merged: dict[str, Any] = {
            "openapi": own.get("openapi", "3.1.0"),
            "info": {"title": "MLife API", "version": own.get("info", {}).get("version", "0.1.0"),
                     "description": "One API for BAM, DAM, MTT and MSM. Authenticate with "
                                    "`Authorization: Bearer <API token>`."},
            "paths": dict(own.get("paths", {})),
            "components": {"schemas": dict(own.get("components", {}).get("schemas", {})),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        }
        unavailable = []
        for service, doc in docs:
            if doc is None:
                unavailable.append(service)
                continue
            doc = _rename_clashing(doc, merged["components"]["schemas"], prefix=service.upper())
            merged["paths"].update(doc.get("paths", {}))
            merged["components"]["schemas"].update(doc.get("components", {}).get("schemas", {}))
        if unavailable:
            merged["info"]["x-mlife-unavailable"] = unavailable
        _document_gateway_behaviour(merged)
        return merged


class BadGateway(MLifeError):
    """The service answered with something that is not HTTP."""

    status_code = 502


async def _error_response(service: str, response: UpstreamResponse, headers: list[tuple[bytes, bytes]]) -> Response:
    """An upstream error in the `{"error", "detail"}` shape: passed through as is when it has it,
    wrapped otherwise (a proxy's HTML 502, a plain-text 500, FastAPI's bare `{"detail"}`)."""
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_ERROR_BODY:
                break
    except UpstreamError:
        pass
    finally:
        await response.aclose()
    kept = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
            if k not in (b"content-length", b"content-encoding", b"content-type", b"set-cookie")}
    status = response.status
    try:
        parsed = json.loads(bytes(body)) if len(body) <= MAX_ERROR_BODY else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed and "detail" in parsed:
        out = JSONResponse(parsed, status_code=status, headers=kept)
    else:
        if isinstance(parsed, dict) and set(parsed) == {"detail"}:
            detail = parsed["detail"]
        elif parsed is not None:
            detail = parsed
        else:
            text = bytes(body[:2000]).decode("utf-8", "replace").strip()
            detail = f"the {service} service answered {status}" + (f": {text}" if text else "")
        out = JSONResponse({"error": _ERROR_NAMES.get(status, "UpstreamError"), "detail": detail},
                           status_code=status, headers=kept)
    out.raw_headers += [(k, v) for k, v in headers if k == b"set-cookie"]  # every cookie, not the last one
    return out


ERROR_SCHEMA = {"type": "object", "required": ["error", "detail"], "title": "MLifeError",
                "properties": {"error": {"type": "string", "description": "the error's class name"},
                               "detail": {"description": "what went wrong and what to fix"}}}
_GATEWAY_ANSWERS = {
    "400": "malformed request (Host header, Content-Length, NUL characters, bad cursor…)",
    "401": "no or invalid API token / session",
    "403": "your role does not allow this, or the CSRF token is missing",
    "404": "no such resource",
    "409": "the resource's state does not allow this",
    "413": "the body is larger than this route accepts",
    "422": "the request's content is invalid",
    "503": "the service is down",
    "504": "the service did not answer in time",
}


def _document_gateway_behaviour(doc: dict[str, Any]) -> None:
    """What the gateway adds to every operation: the public ones need no credentials; every other may
    answer 401/403; any may meet a down or slow service; every error has the `{"error", "detail"}`
    shape (FastAPI's default 422 schema is not what MLife sends)."""
    from gateway.edge.middleware import is_public

    doc["components"]["schemas"]["MLifeError"] = ERROR_SCHEMA
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/MLifeError"}}}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if method.lower() not in ("get", "post", "put", "patch", "delete", "head"):
                continue
            public = is_public(method.upper(), path)
            if public:
                op["security"] = []
            responses = op.setdefault("responses", {})
            codes = {"400", "404", "413", "503", "504"} if not public else {"400", "503"}
            if not public:
                codes |= {"401", "403", "422"}
            if method.lower() in ("post", "put", "patch", "delete"):
                codes.add("409")
            for code in codes:
                responses.setdefault(code, {"description": _GATEWAY_ANSWERS[code]})
            for code, response in responses.items():
                if code[:1] in ("4", "5") and isinstance(response, dict):
                    response["content"] = error_content


def _rename_clashing(doc: dict[str, Any], existing: dict[str, Any], *, prefix: str) -> dict[str, Any]:
    schemas = doc.get("components", {}).get("schemas", {})
    clashes = [n for n, s in schemas.items() if n in existing and existing[n] != s]
    if not clashes:
        return doc
    text = json.dumps(doc)
    for name in clashes:
        text = text.replace(f'"#/components/schemas/{name}"', f'"#/components/schemas/{prefix}{name}"')
    doc = json.loads(text)
    comps = doc["components"]["schemas"]
    for name in clashes:
        comps[prefix + name] = comps.pop(name)
    return doc
