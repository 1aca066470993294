"""Previews of a stored file: a PNG (an image's thumbnail, an image-shaped tensor, an audio waveform or
spectrogram with a segment marked, a video poster frame or strip) or JSON (a text/JSON snippet, a table's
first rows, a tensor's shape and range). PNGs and tensor summaries are made once per file and parameters
and kept in DAM's objects under `previews/<md5>/`; the parameters are snapped (sizes to powers of two,
times to 0.1 s, frames to 1..16) so one file has a bounded number of variants. User content never comes
back as HTML: PNGs are re-encoded and JSON carries strings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dam.file.exceptions import NoPreview, PreviewTooLarge, PreviewUndecodable
from dam.file.models import File
from dam.file.service import file_key
from mlife_shared import media
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all

SIZES = (32, 64, 128, 256, 512, 1024)
TEXT_HEAD = 64 * 1024
TABLE_ROWS = 20
MAX_STRIP_FRAMES = 16
VIEWS = {"image": ("thumbnail",), "tensor": ("thumbnail",), "audio": ("waveform", "spectrogram"),
         "video": ("poster", "strip")}


@dataclass(frozen=True)
class PreviewQuery:
    view: str | None = None
    size: int = 256
    start: float | None = None
    end: float | None = None
    at: float | None = None
    frames: int = 8


@dataclass(frozen=True)
class Preview:
    png: bytes | None = None
    body: dict[str, Any] | None = None


def snap_size(size: int) -> int:
    return next((s for s in SIZES if s >= size), SIZES[-1])


def _t(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, float(value)), 1)


def _segment(f: File, q: PreviewQuery) -> tuple[float | None, float | None]:
    start, end = _t(q.start), _t(q.end)
    if f.duration:
        start = None if start is None else min(start, round(f.duration, 1))
        end = None if end is None else min(end, round(f.duration, 1))
    if start is not None and end is not None and end <= start:
        raise PreviewUndecodable(f"the segment needs start < end (got start={q.start}, end={q.end}; "
                                 "times are rounded to 0.1 s)")
    return start, end


def _is_table(f: File) -> bool:
    return f.content_type in ("text/csv", "text/tab-separated-values") or (
        (f.name or "").lower().endswith((".csv", ".tsv")))


class PreviewService:
    def __init__(self, store: ScopedStore, *, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def preview(self, f: File, q: PreviewQuery) -> Preview:
        views = VIEWS.get(f.media_type)
        if f.media_type in ("text", "json"):
            return Preview(body=await self._text(f))
        if views is None:
            raise NoPreview(f"no preview for {f.media_type} files; download GET /files/{f.md5}/content instead")
        view = q.view or views[0]
        if view not in views:
            raise PreviewUndecodable(f"view={view!r} is not a view of {f.media_type} files; use one of {list(views)}")
        if f.media_type == "tensor":
            return await self._tensor(f, snap_size(q.size))
        name, make = self._plan(f, view, q)
        return Preview(png=await self._cached(f, f"previews/{f.md5}/{name}.png", make))

    def _plan(self, f: File, view: str, q: PreviewQuery) -> tuple[str, Callable[[bytes], bytes]]:
        """The cache name of the picture asked for and the function that draws it from the file's bytes."""
        size = snap_size(q.size)
        if view == "thumbnail":
            return f"thumbnail-{size}", lambda data: media.image_thumbnail(data, size)
        start, end = _segment(f, q)
        if view in ("waveform", "spectrogram"):
            draw = media.waveform_png if view == "waveform" else media.spectrogram_png
            return f"{view}-{start}-{end}", lambda data: draw(data, start, end)
        if view == "poster":
            at = _t(q.at) if q.at is not None else (start or 0.0)
            return f"poster-{at}-{size}", lambda data: media.video_poster(data, at or 0.0, size)
        frames = max(1, min(MAX_STRIP_FRAMES, q.frames))
        s = start or 0.0
        e = end if end is not None else (round(f.duration, 1) if f.duration else None)
        if e is None or e <= s:
            raise PreviewUndecodable("a strip needs an end after its start (this video's duration is unknown: "
                                     "give end=<seconds>)")
        return f"strip-{s}-{e}-{frames}", lambda data: media.video_strip(data, s, e, frames)

    async def _content(self, f: File) -> bytes:
        if f.size > self.max_bytes:
            raise PreviewTooLarge(f"the file has {f.size} bytes, more than the {self.max_bytes} DAM decodes "
                                  "for a preview (MLIFE_DAM_MEDIA_MAX_BYTES)")
        return await read_all(await self.store.get(file_key(f.md5)))

    async def _cached(self, f: File, key: str, make: Callable[[bytes], bytes]) -> bytes:
        if await self.store.stat(key) is not None:
            return await read_all(await self.store.get(key))
        data = await self._content(f)
        try:
            out = await asyncio.to_thread(make, data)
        except media.MediaError as exc:
            raise PreviewUndecodable(f"the {f.media_type} file cannot be previewed: {exc}") from exc
        await self.store.put(key, iterate(out), content_type="image/png")
        return out

    async def _tensor(self, f: File, size: int) -> Preview:
        key = f"previews/{f.md5}/tensor-{size}"
        for suffix in (".png", ".json"):
            if await self.store.stat(key + suffix) is not None:
                cached = await read_all(await self.store.get(key + suffix))
                return Preview(png=cached) if suffix == ".png" else Preview(body=json.loads(cached))
        data = await self._content(f)

        def make() -> tuple[bytes | None, dict[str, Any]]:
            png = media.tensor_image(data, size)
            return png, {} if png is not None else {"kind": "tensor", **media.tensor_summary(data)}

        try:
            png, summary = await asyncio.to_thread(make)
        except media.MediaError as exc:
            raise PreviewUndecodable(f"the tensor cannot be read: {exc}") from exc
        if png is not None:
            await self.store.put(key + ".png", iterate(png), content_type="image/png")
            return Preview(png=png)
        await self.store.put(key + ".json", iterate(json.dumps(summary).encode()), content_type="application/json")
        return Preview(body=summary)

    async def _text(self, f: File) -> dict[str, Any]:
        stream = await self.store.get(file_key(f.md5), length=min(f.size, TEXT_HEAD))
        head = await read_all(stream)
        complete = f.size <= TEXT_HEAD
        if _is_table(f):
            return media.table_preview(head, rows=TABLE_ROWS, complete=complete)
        return media.text_snippet(head, complete=complete)
