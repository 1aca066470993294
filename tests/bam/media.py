"""Media made in BAM's tests: a WAV with a tone in a known segment, a video whose colour changes every second, a
tensor; and reporting a badcase with one of them uploaded."""

from __future__ import annotations

import io
import json
import wave
from typing import Any

import httpx
import numpy as np

from tests.support.bam import report

RATE = 16_000
COLOURS = [(220, 30, 30), (30, 200, 60), (40, 60, 220)]  # red, green, blue: one second each


def tone_wav(seconds: float = 3.0, burst: tuple[float, float] = (1.0, 2.0), freq: float = 440.0) -> bytes:
    """Mono 16-bit PCM: near silence with a loud tone during `burst`."""
    t = np.arange(int(seconds * RATE)) / RATE
    signal = 0.01 * np.random.default_rng(7).standard_normal(t.size)
    inside = (t >= burst[0]) & (t < burst[1])
    signal[inside] += 0.8 * np.sin(2 * np.pi * freq * t[inside])
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def colour_video(container: str = "mp4", seconds: int = 3, fps: int = 10) -> bytes:
    """Red frames in the first second, green in the second, blue in the third (H.264 MP4 or VP8 WebM)."""
    import av

    codec = {"mp4": "libx264", "webm": "libvpx"}[container]
    out = io.BytesIO()
    with av.open(out, "w", format=container) as c:
        stream = c.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, :] = COLOURS[min(2, i // fps)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return out.getvalue()


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


async def upload(bam: httpx.AsyncClient, data: bytes, name: str, **kw: Any) -> httpx.Response:
    body = report(data=[], **kw)
    return await bam.post("/badcases/with-data", data={"report": json.dumps(body)},
                          files={"file": (name, data, "application/octet-stream")})


def audio_ref(md5: str, media_type: str = "audio") -> list[dict[str, str]]:
    return [{"kind": "md5", "value": md5, "media_type": media_type}]
