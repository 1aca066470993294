"""`Client.badcase_preview` and `mlife badcase preview` against the real platform (issue 15): the SDK composes the
services' previews — BAM's for what BAM holds, DAM's for a file BAM only names by MD5 — as the badcase's `preview`
says; audio and video previews are of the badcase's segment unless the caller says otherwise."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from PIL import Image

from mlife.client import Client, MLifeAPIError
from tests.support.cli import mlife, ok
from tests.support.media_samples import (
    PREDICTED_BOXES,
    TRUE_BOXES,
    boxes_png,
    colour_mp4,
    report_on_dam_file,
    report_with_file,
    stack_client,
    tone_wav,
)
from tests.support.stack import Stack


def png_of(ctype: str, body: bytes) -> Image.Image:
    assert ctype == "image/png", ctype
    return Image.open(io.BytesIO(body))


async def test_the_sdk_previews_from_bam_or_dam_as_the_badcase_says(stack: Stack) -> None:
    function = f"sdk-previews-{uuid.uuid4().hex[:6]}"
    async with stack_client(stack) as c:
        held = await report_with_file(c, {"function": function, "prediction": PREDICTED_BOXES, "ground_truth": TRUE_BOXES},
                                      "boxes.png", boxes_png(), "image/png")
        named, md5 = await report_on_dam_file(c, {"function": function, "prediction": "cat"},
                                              f"sdk-{uuid.uuid4().hex[:6]}.png", boxes_png(seed=uuid.uuid4().int % 9999),
                                              "image/png", "image")
        audio = await report_with_file(c, {"function": function, "segment_start": 0.5, "segment_end": 1.5},
                                       "tone.wav", tone_wav(burst=(0.5, 1.5)), "audio/wav")
        video = await report_with_file(c, {"function": function, "segment_start": 1.0, "segment_end": 2.0},
                                       "clip.mp4", colour_mp4(), "video/mp4")
        text = await report_with_file(c, {"function": function}, "note.txt", f"hello {uuid.uuid4()}".encode(),
                                      "text/plain")
        bare = (await c.post("/api/bam/badcases", json={"function": function, "description": "no data"})).json()
    with Client(stack.url, token=stack.tokens["viewer"]) as sdk:
        # BAM holds the image: its thumbnail; DAM holds the other one: DAM's, at the size asked
        assert png_of(*sdk.badcase_preview(held["id"])).size[0] > 0
        assert named["preview"]["source"] == "dam"
        small = png_of(*sdk.badcase_preview(named["id"], size=32))
        assert max(small.size) <= 32
        with Client(stack.url, token=stack.tokens["viewer"]) as direct:
            r = direct.http.get(f"/api/dam/files/{md5}/preview", params={"size": 32})
            assert r.status_code == 200 and r.content == sdk.badcase_preview(named["id"], size=32)[1]
        # audio: the waveform of the segment by default, the spectrogram when asked; video: the poster, a strip
        wave = png_of(*sdk.badcase_preview(audio["id"], view="waveform"))
        spectrogram = png_of(*sdk.badcase_preview(audio["id"], view="spectrogram"))
        assert wave.size[0] > 0 and spectrogram.size[0] > 0 and wave.tobytes() != spectrogram.tobytes()
        poster = png_of(*sdk.badcase_preview(video["id"], view="poster")).convert("RGB")
        r, g, b = poster.getpixel((poster.width // 2, poster.height * 3 // 4))
        assert g > 150 and r < 100 and b < 120, ("the frame at the segment's start (1 s) is green", (r, g, b))
        strip = png_of(*sdk.badcase_preview(video["id"], view="strip", frames=4))
        assert strip.width > strip.height
        # text: a JSON snippet; nothing stored: a 404 saying so
        ctype, body = sdk.badcase_preview(text["id"])
        assert ctype == "application/json" and json.loads(body)["snippet"].startswith("hello ")
        with pytest.raises(MLifeAPIError) as err:
            sdk.badcase_preview(bare["id"])
        assert err.value.status == 404


async def test_mlife_badcase_preview_writes_the_file(stack: Stack, tmp_path: Path) -> None:
    async with stack_client(stack) as c:
        named, _ = await report_on_dam_file(c, {"function": f"cli-preview-{uuid.uuid4().hex[:6]}"},
                                            f"cli-{uuid.uuid4().hex[:6]}.png", boxes_png(seed=uuid.uuid4().int % 9999),
                                            "image/png", "image")
        text = await report_with_file(c, {"function": f"cli-preview-{uuid.uuid4().hex[:6]}"}, "n.txt",
                                      f"cli text {uuid.uuid4()}".encode(), "text/plain")
    out = tmp_path / "thumb.png"
    done = ok(mlife(stack, tmp_path, "badcase", "preview", named["id"], "-o", str(out), "--size", "32", "--json",
                    role="viewer"))
    assert done == {"id": named["id"], "content_type": "image/png", "bytes": out.stat().st_size, "output": str(out)}
    assert max(Image.open(out).size) <= 32
    snippet = ok(mlife(stack, tmp_path, "badcase", "preview", text["id"], role="viewer"))
    assert snippet["kind"] == "snippet" and snippet["snippet"].startswith("cli text ")
    image_to_terminal = mlife(stack, tmp_path, "badcase", "preview", named["id"], role="viewer")
    assert image_to_terminal.returncode == 2 and "give -o FILE" in image_to_terminal.stderr
