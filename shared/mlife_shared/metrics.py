"""Prometheus metrics per app: requests and latency per route, outbox backlog, consumer lag, dead letters."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
CORRELATION_HEADER = "x-correlation-id"


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlife_http_requests_total", "HTTP requests", ["service", "method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("mlife_http_request_duration_seconds", "HTTP request latency",
                                 ["service", "method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.outbox_backlog = Gauge("mlife_outbox_backlog", "Committed events not yet published", ["service"],
                                    registry=self.registry)
        self.dead_letters = Gauge("mlife_dead_letters", "Dead-lettered messages", ["service"], registry=self.registry)
        self.consumer_lag = Gauge("mlife_consumer_lag", "Messages pending or unacknowledged per consumer",
                                  ["service", "consumer"], registry=self.registry)
        self.service = service


class RequestContextMiddleware:
    """Request id and correlation id in the log context and the response; metrics per route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded by routes x methods x codes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            # No database stores a NUL in text: refuse it here, once, for every route.
            body = b'{"error":"InvalidInput","detail":"a NUL character (%00) is not allowed in the URL"}'
            await send({"type": "http.response.start", "status": 422,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = _safe_id(headers.get(REQUEST_ID_HEADER)) or _new_request_id()
        correlation_id = _safe_id(headers.get(CORRELATION_HEADER)) or request_id
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}
        start = time.perf_counter()

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id, correlation_id=correlation_id):
            try:
                await self.app(scope, receive, _send)
            finally:
                template = route_template(scope)
                method = scope.get("method", "GET")
                key = (method, template, status["code"])
                children = self._children.get(key)
                if children is None:  # `labels()` locks and builds the key on every call: a route's pair is kept
                    m = self.metrics
                    children = self._children[key] = (m.requests.labels(m.service, method, template, str(key[2])),
                                                      m.latency.labels(m.service, method, template))
                children[0].inc()
                children[1].observe(time.perf_counter() - start)


def route_template(scope: Scope) -> str:
    """The template of the route that took the request, with the prefix it was included under. FastAPI 0.16x
    routes through the included routers themselves: `scope["route"]` is then the route as declared (no prefix), or
    missing for a plain Starlette route; the route as included is its "effective route context" (`path` for a
    FastAPI route, `starlette_route.path` for a plain one)."""
    context: Any = scope.get("fastapi", {}).get("effective_route_context")
    return (getattr(context, "path", None) or getattr(getattr(context, "starlette_route", None), "path", None)
            or getattr(scope.get("route"), "path", None) or "unmatched")


_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))  # a forked worker draws its own ids


def _new_request_id() -> str:
    """32 hex digits, as `uuid4().hex` gave, without its system call per request (~3 % of a small request's CPU):
    a request id traces, it is no secret."""
    return f"{_ids.getrandbits(128):032x}"


def _safe_id(value: str | None) -> str | None:
    if value and len(value) <= 128 and all(c.isalnum() or c in "-_." for c in value):
        return value
    return None
