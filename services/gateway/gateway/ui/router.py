"""The web UI: static files (plain ES modules, no build step) served from `gateway/static`."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mlife_shared.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)
# The UI never needs inline script or style, nor another origin: data is shown with textContent,
# so even a missed escape cannot run code.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
               ".md": "text/plain"}


# The API docs page: Swagger UI from the vendored files (no CDN: an offline install has the docs too). Swagger UI
# sets inline styles, so that page alone allows them; scripts still come from this origin only.
DOCS_HEADERS = dict(SECURITY_HEADERS, **{
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'"})


def _file(relative: str, security_headers: dict[str, str] = SECURITY_HEADERS) -> FileResponse:
    path = (STATIC / relative).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise NotFound(f"no UI file {relative!r}")
    headers = dict(security_headers)
    headers["Cache-Control"] = "no-cache"
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix), headers=headers)


@router.get("/")
async def index() -> FileResponse:
    return _file("index.html")


@router.get("/docs")
async def docs() -> FileResponse:
    return _file("docs.html", DOCS_HEADERS)


@router.get("/ui/{path:path}")
async def asset(path: str) -> FileResponse:
    return _file(path)
