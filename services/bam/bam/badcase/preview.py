"""Previews: a thumbnail for images (made once, cached in BAM's objects), a snippet for text and JSON.
User content is never served as HTML: thumbnails are re-encoded PNGs, snippets are JSON strings, and
the original data is only ever an attachment."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from PIL import Image

from bam.badcase.attachment import data_key
from bam.badcase.dedup import MAX_IMAGE_PIXELS
from bam.badcase.exceptions import NoPreview
from bam.badcase.models import Badcase
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all

THUMBNAIL_SIZE = 256
SNIPPET_CHARS = 2000
MAX_TEXT_READ = 64 * 1024


@dataclass
class Preview:
    kind: str  # "thumbnail" | "snippet"
    png: bytes | None = None
    snippet: str | None = None
    truncated: bool = False


def thumbnail_key(md5: str) -> str:
    return f"thumbnails/{md5}-{THUMBNAIL_SIZE}.png"


def _thumbnail(data: bytes) -> bytes:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    with Image.open(io.BytesIO(data)) as img:
        img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out = io.BytesIO()
        img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB").save(out, format="PNG", optimize=True)
        return out.getvalue()


async def _head(store: ScopedStore, key: str, limit: int) -> bytes:
    out = bytearray()
    async for chunk in await store.get(key, chunk_size=min(limit, 1 << 16)):
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


async def preview(b: Badcase, store: ScopedStore) -> Preview:
    if not b.data_md5 or await store.stat(data_key(b.data_md5)) is None:
        raise NoPreview("this badcase's data is not stored in BAM: report it with its file "
                        "(POST /badcases/with-data) to get a preview")
    if b.media_type == "image":
        key = thumbnail_key(b.data_md5)
        if await store.stat(key) is None:
            original = await read_all(await store.get(data_key(b.data_md5)))
            try:
                png = await asyncio.to_thread(_thumbnail, original)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise NoPreview("the image cannot be decoded") from exc
            await store.put(key, iterate(png), content_type="image/png")
            return Preview(kind="thumbnail", png=png)
        return Preview(kind="thumbnail", png=await read_all(await store.get(key)))
    if b.media_type in ("text", "json"):
        head = await _head(store, data_key(b.data_md5), MAX_TEXT_READ)
        text = head.decode("utf-8", errors="replace")
        return Preview(kind="snippet", snippet=text[:SNIPPET_CHARS], truncated=len(text) > SNIPPET_CHARS)
    raise NoPreview(f"no preview for {b.media_type} data; download it instead")
