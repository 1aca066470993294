"""Real media made in the test (issue 15): a PNG with objects drawn where the detection boxes say, a short WAV with a
tone burst, a short H.264 MP4 whose frames change colour over time, and the way a client reports a badcase on them
through the gateway (its file uploaded with the report, or a DAM file named by MD5)."""

from __future__ import annotations

import io
import json
import wave
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw

from tests.support.stack import Stack

IMAGE_SIZE = (240, 160)
# prediction vs ground truth: the cats match (IoU 0.86), the dog is a wrong prediction, the bird a missed truth
PREDICTED_BOXES = {"boxes": [{"label": "cat", "box": [20, 20, 100, 90], "score": 0.91},
                             {"label": "dog", "box": [140, 30, 220, 110], "score": 0.66}]}
TRUE_BOXES = {"boxes": [{"label": "cat", "box": [24, 22, 104, 92]}, {"label": "bird", "box": [30, 110, 110, 150]}]}


def boxes_png(seed: int = 0) -> bytes:
    """A light-grey picture with the objects (grey shapes) where the boxes are; `seed` makes it another file."""
    img = Image.new("RGB", IMAGE_SIZE, (236, 238, 240))
    d = ImageDraw.Draw(img)
    d.ellipse((30, 28, 92, 84), fill=(150, 150, 150))
    d.rectangle((150, 40, 210, 100), fill=(120, 120, 120))
    d.polygon([(40, 148), (70, 114), (100, 148)], fill=(170, 170, 170))
    d.point([(seed % IMAGE_SIZE[0], seed // IMAGE_SIZE[0] % IMAGE_SIZE[1])], fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def tone_wav(seconds: float = 3.0, rate: int = 16_000, burst: tuple[float, float] = (1.0, 2.0), freq: float = 440.0) -> bytes:
    """Mono 16-bit PCM: quiet noise with a loud tone during `burst` (the badcase's segment)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(int(freq))
    signal = 0.02 * rng.standard_normal(t.size)
    inside = (t >= burst[0]) & (t < burst[1])
    signal[inside] += 0.8 * np.sin(2 * np.pi * freq * t[inside])
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def colour_mp4(seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (96, 64)) -> bytes:
    """H.264 in MP4 (PyAV): red frames for the first second, green for the second, blue after."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * fps)):
            colour = [(220, 30, 30), (30, 200, 60), (40, 60, 220)][min(2, i // fps)]
            frame = np.zeros((size[1], size[0], 3), np.uint8)
            frame[:, :] = colour
            frame[4:12, (i * 3) % (size[0] - 8):(i * 3) % (size[0] - 8) + 8] = 255  # a moving square
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


async def report_with_file(c: httpx.AsyncClient, report: dict[str, Any], name: str, data: bytes,
                           content_type: str) -> dict[str, Any]:
    r = await c.post("/api/bam/badcases/with-data", data={"report": json.dumps(report)},
                     files={"file": (name, data, content_type)})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def report_on_dam_file(c: httpx.AsyncClient, report: dict[str, Any], name: str, data: bytes,
                             content_type: str, media_type: str) -> tuple[dict[str, Any], str]:
    """The file uploaded to DAM, then a badcase naming it by MD5 (BAM does not hold it): the badcase, the MD5."""
    r = await c.post("/api/dam/files", params={"name": name}, content=data, headers={"content-type": content_type})
    assert r.status_code in (200, 201), r.text
    md5 = str(r.json()["md5"])
    r = await c.post("/api/bam/badcases", json={**report, "data": [{"kind": "md5", "value": md5, "media_type": media_type}]})
    assert r.status_code == 201, r.text
    return dict(r.json()), md5


def stack_client(stack: Stack, role: str = "tester") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.url, headers=stack.auth(role), timeout=60)
