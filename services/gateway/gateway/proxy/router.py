from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.responses import Response

from gateway.proxy.service import Upstreams

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    upstreams: Upstreams = request.app.state.upstreams
    return JSONResponse(await upstreams.merged_openapi(request.app.openapi()))


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="MLife API")


@router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
async def proxy(request: Request, service: str, path: str) -> Response:
    """Authentication already happened at the edge (gateway.edge.middleware); this only forwards."""
    upstreams: Upstreams = request.app.state.upstreams
    return await upstreams.forward(request, service, path)
