from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from dam.config import Settings, SettingsDep
from dam.document.service import require_storable
from dam.file.archive import Limits, extract
from dam.file.exceptions import InvalidUpload, RangeNotSatisfiable, UploadTooLarge
from dam.file.models import File
from dam.file.preview import PreviewQuery, PreviewService
from dam.file.schemas import ArchiveRead, CheckRead, CheckRequest, FileRead, UploadRead
from dam.file.service import FileService, Uploaded, check_path, file_key
from dam.file.upload import incoming, multipart_parts
from dam.quality.router import QualityServiceDep
from dam.quality.schemas import FindingRead
from dam.quality.service import QualityService
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Identity, Tester, Viewer
from mlife_shared.objectstore import ScopedStore

router = APIRouter(prefix="/files", tags=["files"])


async def file_service(session: SessionDep, store: StoreDep, settings: SettingsDep) -> FileService:
    return FileService(session, store, small_bytes=settings.small_upload_bytes,
                       media_max_bytes=settings.media_max_bytes)


FileServiceDep = Annotated[FileService, Depends(file_service)]


def to_read(f: File, store: StoreDep) -> FileRead:
    return FileRead(md5=f.md5, size=f.size, media_type=f.media_type, content_type=f.content_type, name=f.name,
                    width=f.width, height=f.height, duration=f.duration, sample_rate=f.sample_rate,
                    channels=f.channels, fps=f.fps, frame_count=f.frame_count, codec=f.codec,
                    key=store.full_key(file_key(f.md5)), created_at=f.created_at,
                    findings=None if f.findings is None else [FindingRead(**x) for x in f.findings])


def upload_read(u: Uploaded, store: StoreDep) -> UploadRead:
    return UploadRead(**to_read(u.file, store).model_dump(), duplicate=u.duplicate, path=u.path)


def in_hand(u: Uploaded) -> dict[str, bytes]:
    """The content still in memory (a small new image), for the cleaners to read instead of the store."""
    return {} if u.data is None else {u.file.md5: u.data}


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
        raise UploadTooLarge(f"the upload is larger than the limit of {limit} bytes")


@router.post("", status_code=201, responses={200: {"model": UploadRead, "description": "already stored"},
                                              413: {"description": "larger than the limit"}})
async def upload_file(request: Request, service: FileServiceDep, settings: SettingsDep, store: StoreDep,
                      identity: Tester, response: Response, quality: QualityServiceDep,
                      name: Annotated[str | None, Query(max_length=1024, description="Path to record the file under")] = None,
                      md5: Annotated[str | None, Query(description="Expected MD5: a mismatch stores nothing")] = None,
                      extract: Annotated[bool, Query(description="The body is a zip/tar of a folder: extract it "
                                                                 "(the answer is then an ArchiveRead)")] = False,
                      many: Annotated[bool, Query(description="A multipart form with any number of file parts "
                                                              "(a browser folder upload; the answer is an ArchiveRead)")] = False,
                      prefix: Annotated[str | None, Query(max_length=512)] = None,
                      ) -> UploadRead | ArchiveRead:
    """Upload one file, streamed (raw body, or a multipart form's file part): 201 new, 200 `duplicate`; the
    cleaners' findings come with it (flags only: the file is stored all the same)."""
    if extract:
        return await upload_archive(request, service, s=settings, store=store, identity=identity, quality=quality,
                                    prefix=prefix)
    if many:
        return await upload_many(request, service, settings, store, identity, quality, prefix)
    _check_length(request, settings.max_upload_bytes)
    up = incoming(request, name)
    uploaded = await service.store_stream(up.chunks, name=name, max_bytes=settings.max_upload_bytes,
                                          uploader=identity.username, expected_md5=md5,
                                          late_name=lambda: up.filename, keep_data=True, length=up.size)
    await quality.check_uploads([uploaded.file], in_hand(uploaded))
    response.status_code = 200 if uploaded.duplicate else 201
    return upload_read(uploaded, store)


@router.post("/archive", status_code=201)
async def upload_archive(request: Request, service: FileServiceDep, s: SettingsDep, store: StoreDep, identity: Tester,
                         quality: QualityServiceDep,
                         prefix: Annotated[str | None, Query(max_length=512, description="Folder to put the entries "
                                                                                         "under")] = None,
                         ) -> ArchiveRead:
    """Upload a zip or tar(.gz) of a folder: each file stored once by MD5 under its path in the archive."""
    _check_length(request, s.max_upload_bytes)
    limits = Limits(s.max_upload_bytes, s.archive_max_entries, s.archive_max_expanded_bytes, s.archive_max_ratio)
    up = incoming(request, None)
    files = await extract(service, up.chunks, prefix=prefix, limits=limits, uploader=identity.username)
    await quality.check_uploads([u.file for u in files])
    reads = [upload_read(u, store) for u in files]
    dup = sum(1 for r in reads if r.duplicate)
    return ArchiveRead(files=reads, count=len(reads), new=len(reads) - dup, duplicates=dup)


async def upload_many(request: Request, service: FileService, settings: Settings, store: ScopedStore,
                      identity: Identity, quality: QualityService, prefix: str | None) -> ArchiveRead:
    _check_length(request, settings.max_upload_bytes * 64)
    if prefix:
        check_path(prefix)
    out: list[Uploaded] = []
    try:
        async for filename, chunks in multipart_parts(request):
            name = f"{prefix}/{filename}" if prefix else filename
            out.append(await service.store_stream(chunks, name=name, max_bytes=settings.max_upload_bytes,
                                                  uploader=identity.username))
    except BaseException:
        await service.discard_created()
        raise
    if not out:
        raise InvalidUpload("the multipart form has no file part")
    await quality.check_uploads([u.file for u in out])
    reads = [upload_read(u, store) for u in out]
    dup = sum(1 for r in reads if r.duplicate)
    return ArchiveRead(files=reads, count=len(reads), new=len(reads) - dup, duplicates=dup)


@router.post("/check")
async def check_files(body: CheckRequest, service: FileServiceDep, _: Viewer) -> CheckRead:
    """Which of these MD5s are already stored (a client skips uploading them)."""
    found = await service.check(body.md5s)
    return CheckRead(existing=[m for m in body.md5s if m in found], missing=[m for m in body.md5s if m not in found])


@router.get("")
async def list_files(service: FileServiceDep, store: StoreDep, _: Viewer, media_type: str | None = None,
                     min_size: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                     max_size: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[FileRead]:
    """Stored files, newest first, filtered by type and size."""
    require_storable("the media type", media_type)
    rows = await service.find(media_type=media_type, min_size=min_size, max_size=max_size, limit=limit,
                              offset=offset)
    return [to_read(f, store) for f in rows]


@router.get("/{md5}")
async def get_file(md5: str, service: FileServiceDep, store: StoreDep, _: Viewer) -> FileRead:
    """One stored file's metadata."""
    return to_read(await service.get(md5), store)


# User content: never sniffed or run as a page by the browser (an HTML or SVG upload stays inert).
INERT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}


def inert_json(body: object) -> bytes:
    """JSON with `<`, `>` and `&` as \\u escapes: a snippet of user text cannot read as markup anywhere."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `Range: bytes=…` within `size`; None for no range or one this does not
    serve (several ranges, another unit: the whole file is sent, as HTTP allows); RangeNotSatisfiable when
    it lies outside the file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash or not (first_s.isdigit() or last_s.isdigit()) or (first_s and not first_s.isdigit()) or (
            last_s and not last_s.isdigit()):
        return None
    if not first_s:  # a suffix: the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-0 is empty; the file has {size} bytes",
                                      headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    first = int(first_s)
    last = min(int(last_s), size - 1) if last_s else size - 1
    if first >= size or (last_s and int(last_s) < first):
        raise RangeNotSatisfiable(f"the range {spec.strip()} is outside the file's {size} bytes",
                                  headers={"Content-Range": f"bytes */{size}"})
    return first, last


@router.get("/{md5}/content", response_class=StreamingResponse,
            responses={200: {"description": "The file's bytes, with the type detected at upload",
                             "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                       206: {"description": "The bytes of a single `Range: bytes=first-last` (players seek so)"},
                       416: {"description": "The range is outside the file"}})
async def get_content(md5: str, request: Request, service: FileServiceDep, _: Viewer) -> StreamingResponse:
    """The file's bytes, streamed; a single HTTP Range is served as 206 (an audio/video player seeks)."""
    f = await service.get(md5)
    headers = {"ETag": f'"{f.md5}"', "Accept-Ranges": "bytes", **INERT}
    if_range = request.headers.get("if-range")
    wanted = byte_range(request.headers.get("range"), f.size) if if_range in (None, f'"{f.md5}"') else None
    if wanted is None:
        return StreamingResponse(await service.content(f), media_type=f.content_type,
                                 headers={"Content-Length": str(f.size), **headers})
    first, last = wanted
    return StreamingResponse(await service.content(f, offset=first, length=last - first + 1), status_code=206,
                             media_type=f.content_type,
                             headers={"Content-Length": str(last - first + 1),
                                      "Content-Range": f"bytes {first}-{last}/{f.size}", **headers})


@router.get("/{md5}/preview", response_model=None,
            responses={200: {"description": "A PNG (image, image-shaped tensor, waveform, spectrogram, poster, "
                                            "strip) or JSON: `{kind: snippet|table|tensor, …}`",
                             "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                                         "application/json": {}}},
                       404: {"description": "Nothing to preview in this file"},
                       422: {"description": "Undecodable, too large, or parameters that do not fit the file"}})
async def get_preview(md5: str, service: FileServiceDep, store: StoreDep, settings: SettingsDep, _: Viewer,
                      view: Annotated[str | None, Query(max_length=20, description="audio: waveform (default) or spectrogram; "
                                                                    "video: poster (default) or strip")] = None,
                      size: Annotated[int, Query(ge=32, le=1024, description="Longest side of a thumbnail or "
                                                                             "poster (snapped to 32..1024)")] = 256,
                      start: Annotated[float | None, Query(ge=0, le=1e7, description="Segment start, seconds")] = None,
                      end: Annotated[float | None, Query(ge=0, le=1e7, description="Segment end, seconds")] = None,
                      at: Annotated[float | None, Query(ge=0, le=1e7, description="Poster time, seconds (default: "
                                                                                 "start, else 0)")] = None,
                      frames: Annotated[int, Query(ge=1, le=16, description="Frames in a strip")] = 8,
                      ) -> Response:
    """A preview of the file: PNG thumbnail, waveform/spectrogram with the segment [start, end] marked, video
    poster or strip; JSON snippet, table rows or tensor summary. Cached per file and (rounded) parameters."""
    f = await service.get(md5)
    previews = PreviewService(store, max_bytes=settings.media_max_bytes)
    p = await previews.preview(f, PreviewQuery(view=view, size=size, start=start, end=end, at=at, frames=frames))
    if p.png is not None:
        return Response(p.png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600", **INERT})
    return Response(inert_json(p.body), media_type="application/json", headers=INERT)
