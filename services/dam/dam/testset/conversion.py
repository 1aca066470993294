"""Conversion on the way to test data: an audio/video badcase with a segment joins its function's badcase
test set as what the function's models consume — for audio a WAV clip of the segment (resampled to the
function's rate, if it has one), for video PNG frames at the function's rate or a WebM clip — each stored
as a DAM file (MD5 dedup as usual) and recorded with where it came from. The per-function settings live in
`test_data_conversion`; a function without one gets the defaults (video → frames at 1 fps, audio → a clip
at the recording's rate)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.file.models import File
from dam.testset.exceptions import UnconvertibleTestData
from dam.testset.repository import ConversionRepository
from dam.testset.schemas import ConversionRead, ConversionSettings
from mlife_shared import media
from mlife_shared.events.contracts import TestDataItem
from mlife_shared.media.image import png

# The extra columns a converted row carries (added to the test set document's columns when one is written)
PROVENANCE = ["source_md5", "segment_start", "segment_end", "converted", "sample_rate", "frame_index", "frame_time"]
EPS = 1e-6


@dataclass(frozen=True)
class Segment:
    start: float
    end: float


@dataclass(frozen=True)
class Piece:
    data: bytes
    provenance: dict[str, Any]


def has_segment(item: TestDataItem) -> bool:
    return any(v is not None for v in (item.segment_start, item.segment_end, item.frame_start, item.frame_end))


def segment_of(item: TestDataItem, f: File) -> Segment | None:
    """The item's segment in seconds within the file (cut at its end), or None when the item has none or its
    file is not audio/video (it is then added whole, as before)."""
    if f.media_type not in ("audio", "video") or not has_segment(item):
        return None
    duration = f.duration or item.duration
    if item.segment_start is not None or item.segment_end is not None:
        start, end = item.segment_start or 0.0, item.segment_end
    else:
        if not f.fps:
            raise UnconvertibleTestData(f"badcase {item.badcase_id}: a frame range needs the video's frame rate, "
                                        f"and file {f.md5} has none (it could not be probed)")
        start = (item.frame_start or 0) / f.fps
        end = (item.frame_end + 1) / f.fps if item.frame_end is not None else None
    if end is None:
        end = duration
    if end is None:
        raise UnconvertibleTestData(f"badcase {item.badcase_id}: the segment has no end and the duration of "
                                    f"file {f.md5} is unknown")
    if duration:
        end = min(end, duration)
    if end <= start + EPS:
        raise UnconvertibleTestData(f"badcase {item.badcase_id}: the segment [{start}, {end}] s is empty "
                                    f"(the recording lasts {duration} s)")
    return Segment(round(start, 6), round(end, 6))


def convert(data: bytes, f: File, seg: Segment, settings: ConversionSettings) -> list[Piece]:
    """The pieces the segment of `data` becomes (CPU work: run it in a thread)."""
    base: dict[str, Any] = {"segment_start": seg.start, "segment_end": seg.end}
    if f.media_type == "audio":
        clip = media.audio_clip(data, seg.start, seg.end, settings.audio.sample_rate)
        return [Piece(clip, {**base, "converted": "audio clip", "sample_rate": media.wav_info(clip)["sample_rate"]})]
    if settings.video.mode == "clip":
        return [Piece(media.video_clip(data, seg.start, seg.end), {**base, "converted": "video clip"})]
    frames = media.frames_at(data, media.frame_times(seg.start, seg.end, settings.video.fps))
    return [Piece(png(img), {**base, "converted": "video frame", "frame_time": round(t, 6),
                             "frame_index": int(t * f.fps + EPS) if f.fps else None}) for t, img in frames]


async def convert_async(data: bytes, f: File, seg: Segment, settings: ConversionSettings,
                        badcase: str) -> list[Piece]:
    try:
        return await asyncio.to_thread(convert, data, f, seg, settings)
    except media.MediaError as exc:
        raise UnconvertibleTestData(f"badcase {badcase}: file {f.md5} cannot be converted: {exc}") from exc


class ConversionService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = ConversionRepository(session)

    async def get(self, function: str) -> ConversionRead:
        row = await self.repo.by_function(function)
        if row is None:
            return ConversionRead(function=function, is_default=True)
        return ConversionRead(function=function, is_default=False, updated_by=row.updated_by,
                              updated_at=row.updated_at, **ConversionSettings.model_validate(row.settings).model_dump())

    async def settings(self, function: str) -> ConversionSettings:
        row = await self.repo.by_function(function)
        return ConversionSettings() if row is None else ConversionSettings.model_validate(row.settings)

    async def put(self, function: str, body: ConversionSettings, user: str | None) -> ConversionRead:
        await self.repo.put(function, body.model_dump(mode="json"), user)
        return await self.get(function)
