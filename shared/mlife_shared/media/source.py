"""Open media given as bytes or a path, with PyAV, inside bounds."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlife_shared.media.errors import MediaError

Source = bytes | str | Path

# Bounds on what one call decodes: enough for a badcase recording, not for a feature film.
MAX_DECODE_SECONDS = 3600.0
MAX_FRAMES = 3600


def as_file(data: Source) -> Any:
    """A file-like object or a path string PyAV and soundfile can open."""
    if isinstance(data, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(data))
    return str(data)


def read_bytes(data: Source) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read {data}: {exc}") from exc


@contextmanager
def open_container(data: Source) -> Iterator[Any]:
    import av
    try:
        container = av.open(as_file(data), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"not a decodable audio/video file: {exc}") from exc
    try:
        yield container
    except av.FFmpegError as exc:
        raise MediaError(f"the media cannot be decoded: {exc}") from exc
    finally:
        container.close()


def check_segment(start: float | None, end: float | None) -> tuple[float, float | None]:
    s = 0.0 if start is None else float(start)
    if s < 0 or (end is not None and float(end) <= s):
        raise MediaError(f"a segment needs 0 <= start < end (got start={start}, end={end})")
    return s, None if end is None else float(end)
