"""The error hierarchy and its single renderer: every error is `{"error": <ClassName>, "detail": …}`."""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class MLifeError(Exception):
    """Base of every error a service raises on purpose: its HTTP status is `status_code` (declared with
    `class Gone(MLifeError, status=410)`), its message the argument or, by default, the class docstring."""

    status_code = 500

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status

    def __init__(self, message: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message if message is not None else (self.__doc__ or type(self).__name__).strip()
        self.headers = headers
        super().__init__(str(self.message))


class BadRequest(MLifeError, status=400):
    """The request is malformed."""


class Unauthorized(MLifeError, status=401):
    """Authentication is required: send `Authorization: Bearer <token>`."""


class Forbidden(MLifeError, status=403):
    """Your role does not allow this."""


class NotFound(MLifeError, status=404):
    """No such resource."""


class Conflict(MLifeError, status=409):
    """The resource is in a state that does not allow this."""


class PayloadTooLarge(MLifeError, status=413):
    """The request body is too large."""


class Unprocessable(MLifeError, status=422):
    """The request is well-formed but its content is invalid."""


class ServiceUnavailable(MLifeError, status=503):
    """A dependency is unavailable; retry later."""


_HTTP_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
               409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 422: "Unprocessable"}


def _json_safe(value: Any) -> Any:
    """What a client sent can come back in a detail: NaN and ±Infinity are not JSON, so they become text."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# A number the database cannot hold (asyncpg: "value out of int64 range", PostgreSQL: "integer out of range",
# sqlite3: "Python int too large to convert to SQLite INTEGER"). Every parameter has schema bounds that name
# it; this is the safety net for one that was missed: a 422, never a 500.
_OVERFLOW = re.compile(r"out of (int\d+ |smallint |bigint )?range|too large to convert|int too big|"
                       r"numeric field overflow", re.IGNORECASE)
OVERFLOW_DETAIL = "a number in the request is larger or smaller than this service can store; use a smaller value"


def is_integer_overflow(exc: BaseException) -> bool:
    if isinstance(exc, OverflowError):
        return bool(_OVERFLOW.search(str(exc)))
    if isinstance(exc, DBAPIError):
        return bool(_OVERFLOW.search(str(exc.orig) if exc.orig is not None else str(exc)))
    return False


# The database is down or restarting (connection refused or reset, "the database system is shutting down / starting
# up", a pooled connection killed under a query): the request is refused with a 503 and Retry-After, which tells a
# client and a load balancer to try again — not a 500 that says the service is broken.
UNAVAILABLE_DETAIL = "the database is unavailable (restarting or unreachable): retry shortly"
RETRY_AFTER_SECONDS = "2"
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")  # admin/crash shutdown, cannot connect now


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database cannot be reached right now."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_SQLSTATES):
            return True
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else (seen.__cause__ or seen.__context__)
    return False


def _unavailable() -> JSONResponse:
    return JSONResponse(error_body("ServiceUnavailable", UNAVAILABLE_DETAIL), status_code=503,
                        headers={"Retry-After": RETRY_AFTER_SECONDS})


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": _json_safe(detail)}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MLifeError)
    async def _mlife(_: Request, exc: MLifeError) -> JSONResponse:
        return JSONResponse(error_body(type(exc).__name__, exc.message), status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        # (the offending input is left out: it may be huge, binary or not JSON at all)
        return JSONResponse(error_body("RequestValidationError", detail), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
        return JSONResponse(error_body(name, exc.detail), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DBAPIError)
    async def _overflow(request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):
            log.warning("database_unavailable", path=request.url.path, error=str(exc)[:300])
            return _unavailable()
        if is_integer_overflow(exc):
            log.warning("integer_overflow", path=request.url.path, error=str(exc)[:300])
            return JSONResponse(error_body("Unprocessable", OVERFLOW_DETAIL), status_code=422)
        raise exc  # anything else goes on to the one 500 renderer below, as before

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):  # a connection refused by a database that is restarting, say
            log.warning("database_unavailable", path=request.url.path, error=str(exc)[:300])
            return _unavailable()
        log.exception("unhandled_error", path=request.url.path)
        return JSONResponse(error_body("InternalServerError", "an unexpected error occurred; it was logged"),
                            status_code=500)
