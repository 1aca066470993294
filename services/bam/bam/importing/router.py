from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.requests import ClientDisconnect

from bam.importing.exceptions import ImportInterrupted
from bam.importing.parser import Limits, check_declared_size, format_of, read_rows
from bam.importing.schemas import ImportFormat, ImportResult
from bam.importing.service import ImportService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Tester

router = APIRouter(prefix="/badcases", tags=["badcases"])


async def import_service(request: Request, session: SessionDep) -> ImportService:
    return ImportService(session, request.app.state.settings)


ImportServiceDep = Annotated[ImportService, Depends(import_service)]
BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}, "example": "function,data,prediction,ground_truth,tags\n"
                                                          "emotion,md5:0123456789abcdef0123456789abcdef,happy,sad,"
                                                          "mask;night\n"},
    "application/x-ndjson": {"schema": {"type": "string"}, "example": '{"function": "emotion", "prediction": '
                                                                      '"happy", "ground_truth": "sad"}\n'}}}}


@router.post("/import", openapi_extra=BODY, responses={
    400: {"description": "unreadable file: empty, bad CSV header (unknown column), a CSV row over the limit"},
    413: {"description": "body or row count over the limit; nothing imported"},
    415: {"description": "neither CSV nor JSON lines, or not UTF-8"}})
async def import_badcases(
    request: Request, service: ImportServiceDep, identity: Tester,
    format_: Annotated[ImportFormat | None, Query(alias="format", description="Overrides the Content-Type")] = None,
) -> ImportResult:
    """Bulk import of CSV or JSON lines, streamed: valid rows recorded (deduplicated), invalid ones listed by number."""
    fmt = format_of(request.headers.get("content-type"), format_)
    limits = Limits(max_bytes=service.settings.max_import_bytes)
    check_declared_size(request.headers.get("content-length"), limits)
    try:
        return await service.run(read_rows(request.stream(), fmt, limits), reporter=identity.username)
    except ClientDisconnect as exc:
        raise ImportInterrupted() from exc
