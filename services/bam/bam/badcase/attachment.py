"""Data uploaded with a report: streamed into BAM's objects under `data/<md5>`, its kind told from its
content, and a perceptual hash taken for images (for near-duplicate matching and thumbnails)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import UploadFile

from bam.badcase import dedup, media
from bam.badcase.exceptions import DataTooLarge
from mlife_shared.media import MediaError, MediaInfo, probe
from mlife_shared.objectstore import ObjectTooLarge, ScopedStore
from mlife_shared.objectstore.base import read_all

CHUNK = 1 << 20
MAX_HASHED_IMAGE_BYTES = 30 * 1024 * 1024


@dataclass
class Attachment:
    """Data uploaded with a report, already stored in BAM's own objects."""

    md5: str
    media_type: str
    phash: int | None
    info: MediaInfo | None = None  # audio/video: what probing it found (duration, frame rate, frames)
    created: bool = False  # this upload stored `data/<md5>` (no earlier report had)


def data_key(md5: str) -> str:
    return f"data/{md5}"


async def store_upload(store: ScopedStore, upload: UploadFile, *, max_bytes: int) -> Attachment:
    head = bytearray()

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(CHUNK):
            if len(head) < 64:
                head.extend(chunk[: 64 - len(head)])
            yield chunk

    temp = f"incoming/{uuid.uuid4().hex}"
    try:
        stored = await store.put(temp, chunks(), max_size=max_bytes)
    except ObjectTooLarge as exc:
        raise DataTooLarge(f"the data file is larger than {max_bytes} bytes") from exc
    created = False
    try:
        key = data_key(stored.md5)
        if await store.stat(key) is None:
            await store.copy(temp, key)
            created = True
    finally:
        await store.delete(temp)
    kind = media.detect(bytes(head))
    phash, info = None, None
    if kind == "image" and stored.size <= MAX_HASHED_IMAGE_BYTES:
        phash = dedup.dhash(await read_all(await store.get(key)))
    elif kind in ("audio", "video"):
        info = await _probe(await read_all(await store.get(key)))
        if info is not None and info.media_type in ("audio", "video"):
            kind = info.media_type  # an MP4 of sound only is audio
    return Attachment(md5=stored.md5, media_type=kind, phash=phash, info=info, created=created)


async def _probe(data: bytes) -> MediaInfo | None:
    """Duration, frame rate and frames of an audio/video file; None when it cannot be decoded (it is kept, and a
    segment is then checked against the reported duration only)."""
    try:
        return await asyncio.to_thread(probe, data)
    except MediaError:
        return None
