"""Previews of whatever a badcase points at and BAM holds: its uploaded file (image thumbnail, text/JSON snippet,
audio waveform or spectrogram with the segment marked, video poster at the segment start or a strip of frames over
it, a tensor as an image when its shape is one, else its summary), a served input MSM stored (`key:` reference,
read-only through the object store), and a tabular badcase's feature row. Rendered PNGs are cached in BAM's objects
under `previews/`. User content is never served as HTML: PNGs are re-encoded, everything else is JSON, and the
original data is only ever an attachment. A DAM file BAM does not hold is previewed by DAM (`preview_ref`)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row

from bam.badcase import media
from bam.badcase.attachment import data_key
from bam.badcase.exceptions import InvalidPreview, NoPreview
from bam.badcase.models import Badcase
from bam.badcase.schemas import PreviewRef
from mlife_shared.media import (
    MediaError,
    image_thumbnail,
    probe,
    spectrogram_png,
    tensor_image,
    tensor_summary,
    video_poster,
    video_strip,
    waveform_png,
)
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all

THUMBNAIL_SIZE = 256
POINT = 0.01  # seconds: how wide a zero-length segment is drawn
SNIPPET_CHARS = 2000
MAX_TEXT_READ = 64 * 1024
# Served inputs are read from these services' objects (read-only): MSM's stored feedback inputs, DAM's files.
SERVED_INPUT_PREFIXES = ("msm/", "dam/")
View = Literal["waveform", "spectrogram", "poster", "strip"]
VIEWS: dict[str, tuple[str, ...]] = {"audio": ("waveform", "spectrogram"), "video": ("poster", "strip")}
_EXTENSIONS = {"npy": "tensor", "npz": "tensor", "json": "json", "txt": "text", "png": "image", "jpg": "image",
               "jpeg": "image", "webp": "image", "wav": "audio", "flac": "audio", "mp3": "audio", "ogg": "audio",
               "mp4": "video", "webm": "video"}


@dataclass
class Preview:
    kind: str  # "png" | "json"
    png: bytes | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class PreviewRequest:
    """What the caller asked for; start/end/at default to the badcase's segment."""

    view: View | None = None
    size: int | None = None
    start: float | None = None
    end: float | None = None
    at: float | None = None
    frames: int = 8


@dataclass(frozen=True)
class _Data:
    raw_key: str  # the object's full key in the store
    md5: str | None
    media_type: str | None
    size: int


def served_input(b: Badcase | Row[Any]) -> str | None:
    """The object key of the served input (or other platform object) a badcase names, when BAM may read it."""
    return _served_key(b.data_refs)


def _served_key(data_refs: list[dict[str, Any]]) -> str | None:
    for ref in data_refs:
        if ref.get("kind") == "key" and str(ref.get("value", "")).startswith(SERVED_INPUT_PREFIXES):
            return str(ref["value"])
    return None


def guess_media(key: str) -> str | None:
    return _EXTENSIONS.get(key.rsplit(".", 1)[-1].lower()) if "." in key.rsplit("/", 1)[-1] else None


_PREVIEW_COLUMNS = ("data_md5", "data_stored", "media_type", "data_refs", "features")


def preview_fields(row: dict[str, Any]) -> dict[str, Any] | None:
    """Where the badcase's preview lives, from its row alone (no store lookup, so a list page stays one query):
    PreviewRef's fields, from a page's row as a dict of its columns (a page validates them all at once)."""
    md5 = row["data_md5"]
    if row["data_stored"] and md5:
        return {"source": "bam", "md5": md5, "media_type": row["media_type"]}
    key = _served_key(row["data_refs"])
    if key is not None:
        ref_media = next((r.get("media_type") for r in row["data_refs"] if r.get("value") == key), None)
        return {"source": "bam", "md5": None, "media_type": ref_media or guess_media(key)}
    if row["features"]:
        return {"source": "bam", "md5": None, "media_type": "table"}
    if md5:
        return {"source": "dam", "md5": md5, "media_type": row["media_type"]}
    return None


def preview_ref(b: Badcase) -> PreviewRef | None:
    """The same, of a badcase."""
    fields = preview_fields({name: getattr(b, name) for name in _PREVIEW_COLUMNS})
    return None if fields is None else PreviewRef(**fields)


async def preview(b: Badcase, store: ScopedStore, request: PreviewRequest, *, max_bytes: int) -> Preview:
    data = await _locate(b, store)
    if data is None:
        if b.features:
            return Preview(kind="json", body=features_table(b.features))
        if b.data_md5:
            raise NoPreview(f"this badcase's data is a DAM file BAM does not hold: its preview is DAM's "
                            f"GET /api/dam/files/{b.data_md5}/preview (or report it with its file, POST "
                            "/badcases/with-data)")
        raise NoPreview("this badcase's data is not stored in BAM: report it with its file "
                        "(POST /badcases/with-data) to get a preview")
    if data.size > max_bytes:
        raise NoPreview(f"the data is larger than the preview limit of {max_bytes} bytes; download it instead")
    kind = data.media_type
    if kind in ("text", "json"):
        head = await _head_raw(store, data.raw_key, MAX_TEXT_READ)
        text = head.decode("utf-8", errors="replace")
        return Preview(kind="json", body={"kind": "snippet", "media_type": kind, "snippet": text[:SNIPPET_CHARS],
                                          "truncated": len(text) > SNIPPET_CHARS})
    if kind not in ("image", "audio", "video", "tensor"):
        raise NoPreview(f"no preview for {kind or 'this'} data; download it instead")
    if request.view is not None and request.view not in VIEWS.get(kind, ()):
        raise InvalidPreview(f"view={request.view} is not a view of {kind} data; "
                             + (f"use one of {', '.join(VIEWS[kind])}" if kind in VIEWS else "leave view out"))
    params = _params(b, kind, request)
    cache = f"previews/{data.md5}/{params}.png" if data.md5 else None
    if kind == "image" and data.md5 and request.size is None:
        cache = f"thumbnails/{data.md5}-{THUMBNAIL_SIZE}.png"  # the key thumbnails always had
    if cache and await store.stat(cache) is not None:
        return Preview(kind="png", png=await read_all(await store.get(cache)))
    raw = await read_all(await store.store.get(data.raw_key))
    try:
        rendered = await asyncio.to_thread(_render, raw, kind, b, request)
    except MediaError as exc:
        raise NoPreview(f"the {kind} data cannot be decoded: {exc}") from exc
    if rendered.kind == "png" and cache and rendered.png is not None:
        await store.put(cache, iterate(rendered.png), content_type="image/png")
    return rendered


async def _locate(b: Badcase, store: ScopedStore) -> _Data | None:
    """The object holding the badcase's data, when BAM may read it: its own copy, else a served input."""
    if b.data_md5:
        info = await store.stat(data_key(b.data_md5))
        if info is not None:
            return _Data(store.full_key(data_key(b.data_md5)), b.data_md5, b.media_type, info.size)
    key = served_input(b)
    if key is None:
        return None
    info = await store.store.stat(key)
    if info is None:
        raise NoPreview(f"the served input {key} is not in the object store (any more)")
    head = await _head_raw(store, key, 64)
    kind = media.detect(head) if head else None
    if kind in (None, "other", "text"):
        kind = guess_media(key) or kind
    # Cached under a hash of its key and size: a stored input is written once and never changed.
    digest = hashlib.md5(f"{key}\x1f{info.size}".encode(), usedforsecurity=False).hexdigest()
    return _Data(key, digest, kind, info.size)


def _params(b: Badcase, kind: str, r: PreviewRequest) -> str:
    start, end = _span(b, r)
    view = r.view or {"audio": "waveform", "video": "poster"}.get(kind, "thumbnail")
    at = r.at if r.at is not None else (start or 0.0)
    parts = [view, f"s{r.size or 0}"]
    if view in ("waveform", "spectrogram", "strip"):
        parts += [f"{start}", f"{end}"]
    if view == "strip":
        parts.append(f"n{r.frames}")
    if view == "poster":
        parts.append(f"at{at}")
    return "-".join(parts)


def _span(b: Badcase, r: PreviewRequest) -> tuple[float | None, float | None]:
    if r.start is not None or r.end is not None:
        return r.start, r.end
    if b.segment_start is not None and b.segment_end is not None and b.segment_end <= b.segment_start:
        return b.segment_start, b.segment_start + POINT  # a moment, drawn as a thin band
    return b.segment_start, b.segment_end


def _render(raw: bytes, kind: str, b: Badcase, r: PreviewRequest) -> Preview:
    start, end = _span(b, r)
    if kind == "image":
        return Preview(kind="png", png=image_thumbnail(raw, r.size or THUMBNAIL_SIZE))
    if kind == "tensor":
        image = tensor_image(raw, r.size or THUMBNAIL_SIZE)
        if image is not None:
            return Preview(kind="png", png=image)
        return Preview(kind="json", body={"kind": "tensor", **tensor_summary(raw)})
    if kind == "audio":
        width, height = (800, 160) if r.size is None else (r.size, max(24, r.size // (2 if r.size <= 128 else 5)))
        draw = spectrogram_png if r.view == "spectrogram" else waveform_png
        return Preview(kind="png", png=draw(raw, start, end, width=width, height=height))
    if r.view == "strip":
        if end is None:
            duration = b.duration or probe(raw).duration
            if not duration:
                raise MediaError("the video's duration is unknown: give start and end")
            end = duration
        return Preview(kind="png", png=video_strip(raw, start or 0.0, end, frames=r.frames,
                                                    height=min(r.size or 96, 256)))
    at = r.at if r.at is not None else (start or 0.0)
    return Preview(kind="png", png=video_poster(raw, at=at, size=r.size or 512))


def features_table(features: dict[str, Any]) -> dict[str, Any]:
    """A tabular badcase's row as the table the UI shows."""
    return {"kind": "table", "columns": list(features), "rows": [list(features.values())], "truncated": False}


async def _head_raw(store: ScopedStore, raw_key: str, limit: int) -> bytes:
    """The first `limit` bytes of an object named by its full key."""
    return await read_all(await store.store.get(raw_key, offset=0, length=limit))
