import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from gateway.proxy.service import Upstreams
from mlife_shared.errors import MLifeError, NotFound

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    upstreams: Upstreams = request.app.state.upstreams
    return JSONResponse(await upstreams.merged_openapi(request.app.openapi()))


@router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
async def proxy(request: Request, service: str, path: str) -> Response:
    """Authentication already happened at the edge (gateway.edge.middleware); this only forwards."""
    if service == "gateway":
        allowed = _methods_for(request)
        if allowed:
            raise MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
                                   headers={"Allow": ", ".join(sorted(allowed))})
        raise NotFound(f"the gateway has no {request.url.path}")
    upstreams: Upstreams = request.app.state.upstreams
    upstreams.base(service)
    allowed = (await upstreams.spec_index(request.app.openapi())).allowed(service, request.url.path)
    if allowed is not None and request.method not in allowed:
        raise MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
                               headers={"Allow": ", ".join(sorted(allowed))})
    return await upstreams.forward(request, service, path)


class MethodNotAllowed(MLifeError):
    """This path does not take this method."""

    status_code = 405


def _methods_for(request: Request) -> set[str]:
    """The methods the gateway's own routes take on this path (the proxy catches the rest)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {m.upper() for m in operations}
    return methods
