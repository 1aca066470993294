from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import StringConstraints
from starlette.requests import ClientDisconnect

from dam.config import SettingsDep
from dam.document import analysis, parser
from dam.document.exceptions import DocumentTooLarge, InvalidDocument
from dam.document.models import Document, DocumentRow, DocumentVersion
from dam.document.schemas import (
    Comparison,
    DocumentRead,
    RowFilter,
    RowPage,
    RowRead,
    SearchRequest,
    StatisticsQuery,
    VersionRead,
)
from dam.document.service import DocumentService, Version, filter_columns, require_storable
from dam.file.models import File
from mlife_shared.app import SessionDep
from mlife_shared.auth import Engineer, Viewer
from mlife_shared.bounds import INT32_MAX
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import plugins
from mlife_shared.plugins.seams.statistics import Sample

router = APIRouter(prefix="/documents", tags=["documents"])
search_router = APIRouter(tags=["documents"])


async def document_service(request: Request, session: SessionDep, settings: SettingsDep) -> DocumentService:
    return DocumentService(session, max_rows=settings.max_document_rows, plugins_=request.app.state.plugins)


Service = Annotated[DocumentService, Depends(document_service)]


async def filter_query(labels: Annotated[list[str] | None, Query()] = None, has_annotation: bool | None = None,
                 media_types: Annotated[list[str] | None, Query()] = None,
                 min_size: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                 max_size: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                 q: Annotated[str | None, Query(max_length=200)] = None,
                 column: Annotated[list[str] | None, Query(description="name=value on an extra column")] = None,
                 ) -> RowFilter:
    columns: dict[str, list[str]] = {}
    for c in column or []:
        name, sep, value = c.partition("=")
        if not sep:
            raise InvalidDocument(f"column filter {c[:100]!r} must be name=value")
        columns.setdefault(name, []).append(value)
    return RowFilter(labels=labels, has_annotation=has_annotation, media_types=media_types, min_size=min_size,
                     max_size=max_size, q=q, columns=columns or None)


Filter = Annotated[RowFilter, Depends(filter_query)]


async def read_body(request: Request) -> bytes:
    limit = request.app.state.settings.max_document_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise DocumentTooLarge(f"the document is larger than the limit of {limit} bytes")
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise DocumentTooLarge(f"the document is larger than the limit of {limit} bytes")
    except ClientDisconnect as exc:
        raise InvalidDocument("the client disconnected before the document was sent") from exc
    if not buf.strip():
        raise InvalidDocument("the document is empty")
    return bytes(buf)


def doc_read(d: Document, row_count: int) -> DocumentRead:
    return DocumentRead(id=d.id, name=d.name, description=d.description, kind=d.kind, columns=d.columns,
                        function=d.function, label_column=d.label_column, feature_columns=d.feature_columns or [],
                        current_version=d.current_version, row_count=row_count, created_at=d.created_at,
                        updated_at=d.updated_at)


def version_read(v: DocumentVersion) -> VersionRead:
    return VersionRead(version=v.version, row_count=v.row_count, message=v.message, created_by=v.created_by,
                       created_at=v.created_at)


def row_read(r: DocumentRow, f: File | None, doc: tuple[uuid.UUID, int] | None = None) -> RowRead:
    return RowRead(id=r.id, document_id=doc[0] if doc else None, document_version=doc[1] if doc else None,
                   position=r.position, md5=r.md5, path=r.path, annotation=r.annotation, label=r.label, extra=r.extra,
                   features=r.features, media_type=f.media_type if f else None, size=f.size if f else None,
                   width=f.width if f else None, height=f.height if f else None)


FORMATS = ("The converter (GET /plugins lists the active ones: csv, tsv, json, xml, labelstudio, coco, voc, yolo "
           "built in)")
PREFERRED = ("csv", "tsv", "json", "xml", "labelstudio", "coco", "voc", "yolo")


def _active_formats(exporting: bool) -> Callable[[dict[str, Any]], None]:
    """The OpenAPI `enum` of a format parameter: the converters this process has active that go that way (read
    when the OpenAPI is made, so an installed plugin is listed; the UI offers these)."""

    def extra(schema: dict[str, Any]) -> None:
        active = plugins(*seams_of("dam")).active(parser.SEAM)
        names = [n for n, c in active.items() if (c.exports if exporting else c.imports)]
        schema["enum"] = sorted(names, key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))

    return extra


Format = Annotated[str | None, Query(max_length=100, json_schema_extra=_active_formats(False),
                                     description=FORMATS + "; else detected from the body and its Content-Type")]
# Bounded so that a request line stays within what the HTTP server reads (a longer one is refused before the app);
# a longer class list goes in the upload itself (YOLO's classes.txt).
Classes = Annotated[str | None, Query(max_length=1000, description="The class list of formats that number their "
                                                                     "classes (YOLO): a,b,c (else classes.txt in "
                                                                     "the zip, for a longer list)")]
Options = Annotated[list[Annotated[str, StringConstraints(max_length=200)]] | None,
                    Query(max_length=10, description="key=value options for the converter")]


async def converter_options(classes: Classes = None, option: Options = None) -> dict[str, str]:
    out = {}
    for o in option or []:
        key, sep, value = o.partition("=")
        if not sep or not key:
            raise InvalidDocument(f"option {o[:100]!r} must be key=value")
        out[key] = value
    if classes is not None:
        out["classes"] = classes
    return out


ConverterOptions = Annotated[dict[str, str], Depends(converter_options)]


@router.post("", status_code=201)
async def import_document(request: Request, svc: Service, identity: Engineer,
                          name: Annotated[str, Query(min_length=1, max_length=200)], options: ConverterOptions,
                          description: Annotated[str, Query(max_length=2000)] = "",
                          format: Format = None,
                          kind: Annotated[Literal["standard", "table"] | None, Query(
                              description="standard: rows name files (md5 or path); table: rows of feature columns "
                                          "and a label, no files. Default: table when there is no md5/path column")] = None,
                          label_column: Annotated[str | None, Query(
                              max_length=64, description="A table's label column (default: label, else annotation)")] = None,
                          ) -> DocumentRead:
    """Import a document in any format a converter reads (CSV, TSV, JSON, XML: columns md5 or path, annotation and
    extra columns, or a plain table of features and a label; Label Studio tasks, COCO, Pascal VOC XML or a zip of
    them, YOLO labels zip). Nothing is written when a row is invalid."""
    data = await read_body(request)
    v = await svc.create(name=name, description=description, data=data, fmt=format, user=identity.username,
                         kind=kind, label_column=label_column, content_type=request.headers.get("content-type"),
                         options=options)
    return doc_read(v.document, v.version.row_count)


@router.get("")
async def list_documents(svc: Service, _: Viewer, q: Annotated[str | None, Query(max_length=200)] = None,
                         kind: str | None = None, function: Annotated[str | None, Query(max_length=100)] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[DocumentRead]:
    """Documents, most recently changed first; `q` matches name and description, `function` a badcase test set's
    function."""
    require_storable("the query", q, kind, function)
    return [doc_read(d, rows) for d, rows in await svc.find(q=q, kind=kind, function=function, limit=limit,
                                                            offset=offset)]


@router.get("/compare")
async def compare_documents(svc: Service, _: Viewer, a: uuid.UUID, b: uuid.UUID,
                            a_version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                            b_version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None) -> Comparison:
    """Compare two documents or two versions: class counts side by side, files added, removed, relabelled."""
    va, vb = await svc.version(a, a_version), await svc.version(b, b_version)
    ra = (await svc.rows([va.version], RowFilter()))[0]
    rb = (await svc.rows([vb.version], RowFilter()))[0]
    return Comparison(a=_side(va), b=_side(vb), **analysis.compare(ra, rb))


def _side(v: Version) -> dict[str, Any]:
    return {"document_id": str(v.document.id), "name": v.document.name, "version": v.version.version,
            "row_count": v.version.row_count}


@router.get("/{document_id}")
async def get_document(document_id: uuid.UUID, svc: Service, _: Viewer) -> DocumentRead:
    """One document with its current version."""
    v = await svc.version(document_id)
    return doc_read(v.document, v.version.row_count)


@router.get("/{document_id}/versions")
async def list_versions(document_id: uuid.UUID, svc: Service, _: Viewer) -> list[VersionRead]:
    """Every version of the document, oldest first (all stay readable)."""
    return [version_read(v) for v in await svc.versions(document_id)]


@router.post("/{document_id}/versions", status_code=201)
@router.post("/{document_id}/import", status_code=201)
async def add_version(document_id: uuid.UUID, request: Request, svc: Service, identity: Engineer,
                      options: ConverterOptions, mode: Literal["replace", "append"] = "replace",
                      format: Format = None, allow_new_columns: bool = False) -> DocumentRead:
    """Import a new version (any format a converter reads): `replace` the rows, or `append` to the current ones."""
    data = await read_body(request)
    v = await svc.import_version(document_id, data=data, fmt=format, mode=mode, user=identity.username,
                                 allow_new_columns=allow_new_columns, content_type=request.headers.get("content-type"),
                                 options=options)
    return doc_read(v.document, v.version.row_count)


@router.get("/{document_id}/rows")
async def list_rows(document_id: uuid.UUID, svc: Service, _: Viewer, f: Filter,
                    version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
                    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> RowPage:
    """Rows of a version (the current one by default), filtered by annotation, columns, type and size."""
    v = await svc.version(document_id, version)
    svc.check_filter(filter_columns(v.document), f)
    rows, total = await svc.rows([v.version], f, limit=limit, offset=offset)
    return RowPage(items=[row_read(r, fl) for r, fl in rows], total=total)


@router.get("/{document_id}/stats")
async def document_stats(document_id: uuid.UUID, svc: Service, _: Viewer, f: Filter,
                         version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                         statistics: StatisticsQuery = None) -> dict[str, Any]:
    """Distribution of a version or of a selection of its rows by every active statistics plugin: class, type,
    size, dimensions, columns, boxes, and any installed plugin's (`statistics` says which gave what)."""
    v = await svc.version(document_id, version)
    svc.check_filter(filter_columns(v.document), f)
    rows = (await svc.rows([v.version], f))[0]
    sample = Sample(rows=analysis.rows_of(rows), columns=v.document.columns,
                    features=v.document.feature_columns or [])
    return {"document_id": str(v.document.id), "version": v.version.version,
            **analysis.analyse(svc.plugins, sample, statistics, reserved=("document_id", "version"))}


@router.get("/{document_id}/export")
async def export_document(document_id: uuid.UUID, request: Request, svc: Service, _: Viewer,
                          format: Annotated[str, Query(max_length=100, description=FORMATS,
                                                       json_schema_extra=_active_formats(True))] = "csv",
                          version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None) -> Response:
    """Export a version in a converter's format: CSV, TSV, JSON, XML, Label Studio tasks, COCO, Pascal VOC (zip) or
    YOLO (zip of classes.txt and labels/*.txt), or an installed plugin's. In CSV and TSV a text cell starting with
    =, +, -, @, a tab or CR gets a leading single quote (no spreadsheet formulas)."""
    out = await svc.export(document_id, version, format, request.app.state.settings.public_url)
    return Response(out.body, media_type=out.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{out.filename}"'})


@search_router.post("/search")
async def search_rows(body: SearchRequest, svc: Service, _: Viewer) -> RowPage:
    """Keyword and advanced search across the current versions of documents."""
    rows, total = await svc.search(body)
    return RowPage(items=[row_read(r, fl, (v.document.id, v.version.version)) for r, fl, v in rows], total=total)
