from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import Row

from bam.badcase.exceptions import InvalidPreview, InvalidReport
from bam.badcase.filters import FILTER_PARAMETERS, FilterQuery, SortKey
from bam.badcase.models import Badcase
from bam.badcase.preview import PreviewRequest, View, preview_fields, preview_ref
from bam.badcase.schemas import (
    AddToTestData,
    BadcaseCreate,
    BadcasePage,
    BadcaseRead,
    BadcaseUpdate,
    OccurrenceRead,
    TestDataResult,
    TriageChangeRead,
)
from bam.badcase.service import BadcaseService, Recorded, ReportContext
from bam.badcase.test_data import TestDataService
from bam.responses import json_answer
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Tester, Viewer
from mlife_shared.http_limits import loads_bounded

router = APIRouter(prefix="/badcases", tags=["badcases"])
Filter = FilterQuery


async def badcase_service(request: Request, session: SessionDep) -> BadcaseService:
    return BadcaseService(session, request.app.state.settings)


BadcaseServiceDep = Annotated[BadcaseService, Depends(badcase_service)]


async def test_data_service(session: SessionDep, store: StoreDep) -> TestDataService:
    return TestDataService(session, store)


TestDataServiceDep = Annotated[TestDataService, Depends(test_data_service)]


def to_read(b: Badcase, merged_into: uuid.UUID | None = None) -> BadcaseRead:
    """The badcase (a page's Core rows go through `page_answer`)."""
    return BadcaseRead(
        id=b.id, function=b.function, system_version=b.system_version, model_name=b.model_name,
        model_version=b.model_version, source=b.source, reporter=b.reporter, client_id=b.client_id,
        device_id=b.device_id, description=b.description, tags=b.tags, data=b.data_refs, data_md5=b.data_md5,
        media_type=b.media_type, prediction=b.prediction, ground_truth=b.ground_truth, status=b.status,
        severity=b.severity, priority=b.priority, priority_score=b.priority_score,
        priority_is_manual=b.priority_override is not None, owner=b.owner, frequency=b.frequency,
        first_seen=b.first_seen, last_seen=b.last_seen, created_at=b.created_at, updated_at=b.updated_at,
        fixed_at=b.fixed_at, regressed_at=b.regressed_at, added_to_test_data_at=b.test_data_requested_at,
        features=b.features, task_id=b.task_id, deployment_id=b.deployment_id, model_version_id=b.model_version_id,
        merged_into=merged_into, segment_start=b.segment_start, segment_end=b.segment_end, frame_start=b.frame_start,
        frame_end=b.frame_end, duration=b.duration, preview=preview_ref(b))


def page_answer(rows: Sequence[Row[Any]], next_cursor: str | None) -> Response:
    """A list page as `to_read` of each row would give it, validated in one call: each Core row becomes a dict by
    its column names (`to_read`'s keyword arguments, one by one, were a quarter of a list request's CPU); the
    few fields named or derived differently are set on it; columns BadcaseRead does not have are ignored."""
    items: list[dict[str, Any]] = []
    if rows:
        names = rows[0]._fields
        for row in rows:
            item = dict(zip(names, row, strict=True))
            item["data"] = item["data_refs"]
            item["added_to_test_data_at"] = item["test_data_requested_at"]
            item["priority_is_manual"] = item["priority_override"] is not None
            item["preview"] = preview_fields(item)
            items.append(item)
    return json_answer(BadcasePage.model_validate({"items": items, "next_cursor": next_cursor}))


def _answer(recorded: Recorded, response: Response) -> BadcaseRead:
    response.status_code = 200 if recorded.merged else 201
    return to_read(recorded.badcase, merged_into=recorded.badcase.id if recorded.merged else None)


@router.post("", status_code=201, responses={200: {"model": BadcaseRead, "description": "merged into an existing badcase"}})
async def report_badcase(report: BadcaseCreate, service: BadcaseServiceDep, identity: Tester,
                         response: Response) -> BadcaseRead:
    """Record a badcase: 201 when new, 200 with `merged_into` when it matched an existing one."""
    return _answer(await service.record(report, ReportContext(identity.username, report.source)), response)


@router.post("/with-data", status_code=201,
             responses={200: {"model": BadcaseRead, "description": "merged into an existing badcase"}})
async def report_badcase_with_data(
    service: BadcaseServiceDep, store: StoreDep, identity: Tester, response: Response,
    report: Annotated[str, Form(description="The report as JSON (the body of POST /badcases)")],
    file: Annotated[UploadFile, File(description="The badcase's data: image, audio, video, text or JSON")],
) -> BadcaseRead:
    """Record a badcase with its data file: stored once by MD5, near-duplicate images matched."""
    try:
        parsed = BadcaseCreate.model_validate(loads_bounded(report, what="the report"))
    except (ValueError, ValidationError) as exc:
        detail = exc.errors(include_url=False) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidReport(detail) from exc
    recorded = await service.record_with_data(parsed, ReportContext(identity.username, parsed.source), store, file)
    return _answer(recorded, response)


@router.post("/add-to-test-data")
async def add_badcases_to_test_data(body: AddToTestData, service: TestDataServiceDep, _: Tester) -> TestDataResult:
    """Send the badcases (by `ids` or `filter`) to DAM's badcase test set; they show `added_to_test_data_at`."""
    return await service.add(body)


@router.get("", response_model=BadcasePage, openapi_extra=FILTER_PARAMETERS)
async def list_badcases(service: BadcaseServiceDep, _: Viewer, f: Filter, sort: SortKey = "-priority",
                        cursor: Annotated[str | None, Query(max_length=500)] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    """Retrieve badcases: filters on every attribute, full-text `q`, `sort`, cursor pagination."""
    rows, next_cursor = await service.page(f, sort=sort, limit=limit, cursor=cursor)
    return page_answer(rows, next_cursor)


@router.get("/{badcase_id}")
async def get_badcase(badcase_id: uuid.UUID, service: BadcaseServiceDep, _: Viewer) -> BadcaseRead:
    """One badcase."""
    return to_read(await service.get(badcase_id))


@router.patch("/{badcase_id}")
async def triage_badcase(badcase_id: uuid.UUID, update: BadcaseUpdate, service: BadcaseServiceDep,
                         identity: Tester) -> BadcaseRead:
    """Triage: status, manual priority (null clears it), severity, owner, tags, description."""
    return to_read(await service.triage(badcase_id, update, identity.username))


@router.get("/{badcase_id}/occurrences")
async def list_occurrences(badcase_id: uuid.UUID, service: BadcaseServiceDep, _: Viewer,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OccurrenceRead]:
    """Every report of this badcase, newest first."""
    return [OccurrenceRead.model_validate(o, from_attributes=True)
            for o in await service.occurrences(badcase_id, limit)]


@router.get("/{badcase_id}/history")
async def triage_history(badcase_id: uuid.UUID, service: BadcaseServiceDep, _: Viewer) -> list[TriageChangeRead]:
    """Who changed what, and when."""
    return [TriageChangeRead.model_validate(c, from_attributes=True) for c in await service.history(badcase_id)]


SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600"}


@router.get("/{badcase_id}/preview", responses={200: {"content": {"image/png": {}, "application/json": {}}}})
async def preview_badcase(
    badcase_id: uuid.UUID, service: BadcaseServiceDep, store: StoreDep, _: Viewer,
    view: Annotated[View | None, Query(description="audio: waveform (default) or spectrogram; video: poster "
                                                   "(default) or strip")] = None,
    size: Annotated[int | None, Query(ge=16, le=2048, description="Longer side of an image or poster, width of a "
                                                                 "waveform, height of a strip")] = None,
    start: Annotated[float | None, Query(ge=0, description="Segment start (s); default: the badcase's")] = None,
    end: Annotated[float | None, Query(ge=0, description="Segment end (s); default: the badcase's")] = None,
    at: Annotated[float | None, Query(ge=0, description="Video poster time (s); default: the segment start")] = None,
    frames: Annotated[int, Query(ge=1, le=32, description="Frames in a video strip")] = 8,
) -> Response:
    """A PNG (image thumbnail, audio waveform/spectrogram with the segment marked, video poster or strip, tensor
    image) or JSON (`snippet` of text/JSON, `table` of a tabular row, `tensor` summary); 404 when BAM holds nothing
    to preview (`preview.source` of the badcase says where its preview is)."""
    if start is not None and end is not None and start >= end:
        raise InvalidPreview(f"start ({start}) must be before end ({end})")
    request = PreviewRequest(view=view, size=size, start=start, end=end, at=at, frames=frames)
    b, p = await service.preview(badcase_id, store, request)
    if p.kind == "png":
        assert p.png is not None
        return Response(p.png, media_type="image/png", headers={
            **SAFE_HEADERS, "Content-Disposition": f'inline; filename="{b.id}-preview.png"'})
    return JSONResponse(p.body, headers=SAFE_HEADERS)


@router.get("/{badcase_id}/data", responses={200: {"content": {"application/octet-stream": {}}},
                                             206: {"description": "the byte range asked for (Range: bytes=…)"},
                                             416: {"description": "the range is not within the data"}})
async def download_data(badcase_id: uuid.UUID, service: BadcaseServiceDep, store: StoreDep, _: Viewer,
                        range_header: Annotated[str | None, Header(alias="Range")] = None) -> StreamingResponse:
    """The badcase's original data file, always as a download (never rendered by the browser); a `Range: bytes=…`
    request gets that part (206), so players can seek."""
    got = await service.data(badcase_id, store, range_header)
    headers = {**SAFE_HEADERS, "Content-Disposition": f'attachment; filename="{got.md5}"', "Accept-Ranges": "bytes"}
    if got.range is None:
        return StreamingResponse(got.stream, media_type="application/octet-stream",
                                 headers={**headers, "Content-Length": str(got.size)})
    return StreamingResponse(got.stream, status_code=206, media_type="application/octet-stream", headers={
        **headers, "Content-Range": got.range.content_range(got.size), "Content-Length": str(got.range.length)})
