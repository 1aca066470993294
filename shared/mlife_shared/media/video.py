"""Video: a poster frame, a strip of frames, frames at a rate, a playable WebM (VP8) clip.

The frame shown at time t is the last frame whose timestamp is <= t (the first frame for t before it)."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mlife_shared.media.errors import MediaError
from mlife_shared.media.image import png
from mlife_shared.media.source import MAX_FRAMES, Source, check_segment, open_container

if TYPE_CHECKING:
    from PIL import Image

CLIP_CONTAINER = "webm"
CLIP_CODEC = "libvpx"  # VP8: plays in every Chromium build, unlike H.264
EPS = 1e-6


def _frame_time(frame: Any, stream: Any) -> float:
    if frame.pts is None:
        return float(frame.time or 0.0)
    return float((frame.pts - (stream.start_time or 0)) * stream.time_base)


def frames_at(data: Source, times: list[float]) -> list[tuple[float, Image.Image]]:
    """(time asked, the frame shown then) for each of the sorted `times`, in one pass."""
    if len(times) > MAX_FRAMES:
        raise MediaError(f"{len(times)} frames asked; at most {MAX_FRAMES} per call")
    if not times:
        return []
    wanted = sorted(times)
    out: list[tuple[float, Image.Image]] = []
    with open_container(data) as c:
        if not c.streams.video:
            raise MediaError("the file has no video stream")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        _seek(c, stream, wanted[0])
        previous: Any = None  # the last frame decoded, made an image only when it is the one shown
        shown: Image.Image | None = None
        for frame in c.decode(stream):
            t = _frame_time(frame, stream)
            while wanted and t > wanted[0] + EPS:
                if shown is None:
                    shown = (previous if previous is not None else frame).to_image()
                out.append((wanted.pop(0), shown))
            if not wanted:
                break
            previous, shown = frame, None
        if previous is None:
            raise MediaError("the video has no decodable frame")
        last = shown or previous.to_image()
        out.extend((t, last) for t in wanted)  # asked past the last frame: the last frame
    return out


def _seek(container: Any, stream: Any, t: float) -> None:
    """Jump to the key frame at or before `t` (decoding resumes there), when `t` is far enough in to matter."""
    import av
    if t < 2.0 or stream.time_base is None:
        return
    try:
        container.seek(int(t / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True,
                       any_frame=False)
    except av.FFmpegError:
        container.seek(0, stream=stream)


def _resize_height(img: Image.Image, height: int) -> Image.Image:
    from PIL import Image
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.BILINEAR)


def video_poster(data: Source, at: float = 0.0, size: int = 512) -> bytes:
    """A PNG of the frame shown at `at` seconds, at most `size` pixels on its longer side."""
    if at < 0:
        raise MediaError(f"at must be >= 0 seconds (got {at})")
    img = frames_at(data, [float(at)])[0][1].copy()
    img.thumbnail((size, size))
    return png(img)


def strip_times(start: float, end: float, frames: int) -> list[float]:
    """The middles of `frames` equal parts of [start, end]."""
    step = (end - start) / frames
    return [start + (i + 0.5) * step for i in range(frames)]


def video_strip(data: Source, start: float, end: float, frames: int = 8, height: int = 96) -> bytes:
    """A PNG of `frames` evenly spaced frames of [start, end] side by side, each `height` pixels high
    (strip width = frames x one frame's width)."""
    from PIL import Image
    s, e = check_segment(start, end)
    if e is None or not 1 <= frames <= 64:
        raise MediaError(f"a strip needs an end and 1..64 frames (got end={end}, frames={frames})")
    shots = [_resize_height(img, height) for _t, img in frames_at(data, strip_times(s, e, frames))]
    strip = Image.new("RGB", (sum(i.width for i in shots), height))
    x = 0
    for shot in shots:
        strip.paste(shot.convert("RGB"), (x, 0))
        x += shot.width
    return png(strip)


def frame_times(start: float, end: float, fps: float) -> list[float]:
    """start, start + 1/fps, … up to (not including) end."""
    s, e = check_segment(start, end)
    if e is None or not 0 < fps <= 120:
        raise MediaError(f"frames need an end and 0 < fps <= 120 (got end={end}, fps={fps})")
    n = int((e - s) * fps + 1 - EPS)
    n = max(1, n if s + (n - 1) / fps < e - EPS else n - 1)
    return [s + i / fps for i in range(n)]


def video_frames(data: Source, start: float, end: float, fps: float) -> list[bytes]:
    """Full-size PNGs of the frames shown at `frame_times(start, end, fps)`."""
    return [png(img) for _t, img in frames_at(data, frame_times(start, end, fps))]


def video_clip(data: Source, start: float, end: float) -> bytes:
    """A WebM (VP8, no audio) of [start, end) at the source's frame rate, timestamps from 0."""
    import av
    s, e = check_segment(start, end)
    if e is None:
        raise MediaError("a clip needs an end")
    out = io.BytesIO()
    written = 0
    with open_container(data) as c:
        if not c.streams.video:
            raise MediaError("the file has no video stream")
        src = c.streams.video[0]
        rate = Fraction(src.average_rate or src.guessed_rate or 25).limit_denominator(1000)
        width, height = (src.codec_context.width // 2) * 2, (src.codec_context.height // 2) * 2
        if width < 2 or height < 2:
            raise MediaError("the video has no usable frame size")
        with av.open(out, mode="w", format=CLIP_CONTAINER) as dst:
            stream: Any = dst.add_stream(CLIP_CODEC, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.bit_rate = 2_000_000
            for frame in c.decode(src):
                t = _frame_time(frame, src)
                if t < s - EPS:
                    continue
                if t >= e - EPS or written >= MAX_FRAMES:
                    break
                f = frame.reformat(width=width, height=height, format="yuv420p")
                f.pts, f.time_base = written, stream.codec_context.time_base
                dst.mux(stream.encode(f))
                written += 1
            if not written:
                raise MediaError(f"no frame in [{s}, {e}) s")
            dst.mux(stream.encode(None))
    return out.getvalue()
