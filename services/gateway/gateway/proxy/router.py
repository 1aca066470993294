from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from gateway.proxy.service import Upstreams
from mlife_shared.errors import MLifeError, NotFound

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def upstreams(request: Request) -> Upstreams:
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
    upstreams.base(service)
    allowed = (await upstreams.spec_index(request.app.openapi())).allowed(service, request.url.path)
    if allowed is not None and request.method not in allowed:
        raise MethodNotAllowed.of(request.method, allowed)
    return await upstreams.forward(request, service, path)


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
