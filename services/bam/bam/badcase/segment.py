"""A report's audio/video segment: checked against what its data is (media type, probed duration and frame rate)
and kept as seconds and/or a frame range. The rules of the numbers alone are in `schemas.check_segment`; how
segments make badcases the same is in `dedup`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from bam.badcase.exceptions import InvalidReport
from bam.badcase.schemas import DURATION_SLACK, BadcaseCreate
from mlife_shared.media import MediaInfo


@dataclass(frozen=True)
class Segment:
    seconds: tuple[float, float] | None = None
    frames: tuple[int, int] | None = None
    duration: float | None = None

    @property
    def present(self) -> bool:
        return self.seconds is not None or self.frames is not None

    def union(self, other: Segment) -> Segment:
        """The smallest segment holding both (what a merged badcase's segment becomes)."""
        return Segment(seconds=_union(self.seconds, other.seconds), frames=_union(self.frames, other.frames),
                       duration=self.duration if self.duration is not None else other.duration)


T = TypeVar("T", int, float)


def _union(a: tuple[T, T] | None, b: tuple[T, T] | None) -> tuple[T, T] | None:
    if a is None or b is None:
        return a if b is None else b
    return (min(a[0], b[0]), max(a[1], b[1]))


def pair(start: T | None, end: T | None) -> tuple[T, T] | None:
    return (start, end) if start is not None and end is not None else None


def of_report(report: BadcaseCreate, media: str | None, info: MediaInfo | None = None, *,
              has_data: bool = True) -> Segment:
    """The report's segment, checked against its data: audio/video only (a reference without a media type is taken
    as it is), frames for video only, within the recording (the probed duration and frame count of an uploaded file
    win over the reported duration)."""
    duration = info.duration if info is not None and info.duration else report.duration
    seconds = pair(report.segment_start, report.segment_end)
    frames = pair(report.frame_start, report.frame_end)
    if seconds is None and frames is None:
        return Segment(duration=duration if media in ("audio", "video", None) and has_data else None)
    if not has_data:
        raise InvalidReport("a segment is a part of audio or video data: upload the file (POST /badcases/with-data) "
                            "or name it in `data` (with media_type 'audio' or 'video')")
    if media is not None and media not in ("audio", "video"):
        raise InvalidReport(f"a segment or frame range is for audio or video data, not {media} data")
    if frames is not None and media not in (None, "video"):
        raise InvalidReport("a frame range is for video data only: give an audio badcase segment_start and "
                            "segment_end in seconds")
    if seconds is not None and duration is not None and seconds[1] > duration + DURATION_SLACK:
        raise InvalidReport(f"segment_end ({seconds[1]} s) is past the end of the recording ({duration:.3f} s)")
    if frames is not None and info is not None and info.frame_count and frames[1] >= info.frame_count:
        raise InvalidReport(f"frame_end ({frames[1]}) is past the last frame of the video "
                            f"({info.frame_count - 1}; frames are 0-based)")
    if frames is not None and seconds is None and info is not None and info.fps:
        # The file's frame rate turns the frames into seconds, so previews and overlap in seconds work too.
        end = (frames[1] + 1) / info.fps
        seconds = (frames[0] / info.fps, min(end, duration) if duration else end)
    return Segment(seconds=seconds, frames=frames, duration=duration)
