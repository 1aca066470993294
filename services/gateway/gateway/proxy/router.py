from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.responses import StreamingResponse

from gateway.proxy.service import PUBLIC_PATHS, Upstreams
from gateway.user.service import authenticate_token
from mlife_shared.errors import Unauthorized

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
async def proxy(request: Request, service: str, path: str) -> StreamingResponse:
    upstreams: Upstreams = request.app.state.upstreams
    upstreams.base(service)  # 404 for an unknown service before anything else
    identity = None
    if path not in PUBLIC_PATHS:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("authentication required: send 'Authorization: Bearer <API token>'",
                               headers={"WWW-Authenticate": "Bearer"})
        # A short transaction of its own: the session must not stay open while the body streams.
        async with request.app.state.db.transaction() as session:
            identity = await authenticate_token(session, token.strip())
    return await upstreams.forward(request, service, path, identity)
