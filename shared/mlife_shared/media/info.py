"""`probe`: what a media file is and how long, fast, big it is."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

from mlife_shared.media.errors import MediaError
from mlife_shared.media.source import Source, open_container, read_bytes

MAX_IMAGE_PIXELS = 50_000_000  # the decompression-bomb bound (BAM uses the same)


@dataclass(frozen=True)
class MediaInfo:
    media_type: str  # "image" | "audio" | "video"
    duration: float | None = None  # seconds
    sample_rate: int | None = None
    channels: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _image_info(raw: bytes) -> MediaInfo | None:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(raw)) as img:
            return MediaInfo(media_type="image", width=int(img.width), height=int(img.height),
                             codec=(img.format or "").lower() or None,
                             frame_count=int(getattr(img, "n_frames", 1)))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def probe(data: Source) -> MediaInfo:
    """Image, audio or video facts of `data`; `MediaError` when it is none of them."""
    raw = read_bytes(data)
    image = _image_info(raw)
    if image is not None:
        return image
    with open_container(raw) as c:
        container_duration = float(c.duration) / 1_000_000 if c.duration else None
        video = next((s for s in c.streams.video), None)
        audio = next((s for s in c.streams.audio), None)
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else None
            duration = _stream_duration(video) or container_duration
            frames = int(video.frames or 0) or (round(duration * fps) if duration and fps else None)
            return MediaInfo(media_type="video", duration=duration, fps=fps, frame_count=frames,
                             width=int(video.codec_context.width) or None,
                             height=int(video.codec_context.height) or None,
                             codec=video.codec_context.name,
                             sample_rate=int(audio.rate) if audio is not None else None,
                             channels=int(audio.channels) if audio is not None else None)
        if audio is not None:
            return MediaInfo(media_type="audio", duration=_stream_duration(audio) or container_duration,
                             sample_rate=int(audio.rate), channels=int(audio.channels),
                             codec=audio.codec_context.name)
    raise MediaError("the file holds neither an image nor an audio or video stream")


def _stream_duration(stream: Any) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base) or None
