from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import SERVICES
from gateway.proxy.service import Upstreams
from mlife_shared.errors import MLifeError, NotFound, error_body

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def upstreams(request: Request) -> Upstreams:
    """The app's one proxy service (it holds the connection pool to the services)."""
    found: Upstreams = request.app.state.upstreams
    return found


UpstreamsDep = Annotated[Upstreams, Depends(upstreams)]


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, upstreams: UpstreamsDep) -> JSONResponse:
    return JSONResponse(await upstreams.merged_openapi(request.app.openapi()))


@router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
async def proxy(request: Request, service: str, path: str, upstreams: UpstreamsDep) -> Response:
    """Authentication already happened at the edge (gateway.edge.middleware); this only forwards."""
    if service == "gateway":
        own = _methods_for(request)
        if own:
            raise MethodNotAllowed.of(request.method, own)
        raise NotFound(f"the gateway has no {request.url.path}")
    return await _forward(request, service, path, upstreams)


async def _forward(request: Request, service: str, path: str, upstreams: Upstreams) -> Response:
    upstreams.base(service)
    allowed = (await upstreams.spec_index(request.app.openapi())).allowed(service, request.url.path)
    if allowed is not None and request.method not in allowed:
        raise MethodNotAllowed.of(request.method, allowed)
    return await upstreams.forward(request, service, path)


_SERVICE_PATH = re.compile(rf"^/api/({'|'.join(SERVICES)})/(.*)$", re.DOTALL)


class ProxyFastPath:
    """The innermost middleware: a request for a service (`/api/<bam|dam|mtt|msm>/…`) goes straight to the
    proxy, as the `proxy` route would take it, without matching it against every route of the gateway and
    without FastAPI's per-route machinery (a third of the gateway's own time per proxied request). Errors are
    rendered as the app's handler renders them; anything else goes to the router as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.methods = frozenset(METHODS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _SERVICE_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        service, path = match.group(1), match.group(2)
        scope["path_params"] = {"service": service, "path": path}
        scope["route"] = _PROXY_ROUTE  # the metrics' route template
        request = Request(scope, receive)
        try:
            response = await _forward(request, service, path, scope["app"].state.upstreams)
        except MLifeError as exc:
            response = JSONResponse(error_body(type(exc).__name__, exc.message), status_code=exc.status_code,
                                    headers=exc.headers)
        await response(scope, receive, send)


class MethodNotAllowed(MLifeError):
    """This path does not take this method."""

    status_code = 405

    @classmethod
    def of(cls, method: str, allowed: set[str]) -> MethodNotAllowed:
        methods = ", ".join(sorted(allowed))
        return cls(f"{method} is not allowed here; use {methods}", headers={"Allow": methods})


def _methods_for(request: Request) -> set[str]:
    """The methods the gateway's own routes take on this path (the proxy catches the rest)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {m.upper() for m in operations}
    return methods


_PROXY_ROUTE = next(r for r in router.routes if getattr(r, "name", "") == "proxy")
