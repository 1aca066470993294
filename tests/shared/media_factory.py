"""Real media made in the test: a PNG with coloured boxes, a WAV (silence then a tone), a video whose
frames change colour every second."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import soundfile
from PIL import Image, ImageDraw

# Frame colour of second k of `make_video`: easy to tell apart after lossy coding.
VIDEO_COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30), (30, 220, 220), (220, 30, 220)]


def make_png(width: int = 320, height: int = 200) -> bytes:
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width // 2 - 1, height - 1), fill=(255, 0, 0))
    draw.rectangle((width // 2, 0, width - 1, height - 1), fill=(0, 0, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def make_wav(rate: int = 22050, silence: float = 1.0, tone: float = 1.0, freq: float = 440.0,
             channels: int = 1) -> bytes:
    t = np.arange(int(tone * rate)) / rate
    signal = np.concatenate([np.zeros(int(silence * rate)), 0.8 * np.sin(2 * np.pi * freq * t)])
    data = np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal
    out = io.BytesIO()
    soundfile.write(out, data, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def make_video(seconds: int = 4, fps: int = 10, width: int = 64, height: int = 48, fmt: str = "mp4",
               gop: int | None = None) -> bytes:
    """An MP4 (H.264) or WebM (VP8) whose frames are `VIDEO_COLOURS[second]`, with a small black square
    moving along the top edge (so no two frames are alike)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as c:
        stream = c.add_stream("libx264" if fmt == "mp4" else "libvpx", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop is not None:  # a key frame every `gop` frames: a seek lands on one
            stream.codec_context.gop_size = gop
        for i in range(seconds * fps):
            colour = VIDEO_COLOURS[(i // fps) % len(VIDEO_COLOURS)]
            arr = np.zeros((height, width, 3), dtype=np.uint8)
            arr[:, :] = colour
            x = (i * 4) % (width - 4)
            arr[0:4, x:x + 4] = 0
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return out.getvalue()


def close(rgb: tuple[int, ...], expected: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(rgb[:3], expected, strict=True))
