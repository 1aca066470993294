"""DAM's media: facts probed at upload, previews (pixels checked), HTTP Range on content — on media made in
the test (a PNG with boxes, a WAV of silence then a tone, an MP4 whose colour changes every second)."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from mlife_shared import media
from tests.dam.helpers import md5, random_bytes
from tests.shared.media_factory import VIDEO_COLOURS, close, make_png, make_video, make_wav

INERT = ("nosniff", "default-src 'none'; sandbox")


async def upload(client: httpx.AsyncClient, data: bytes, name: str | None = None) -> dict[str, object]:
    r = await client.post("/files", params={"name": name} if name else None, content=data)
    assert r.status_code in (200, 201), r.text
    body: dict[str, object] = r.json()
    return body


def png_of(r: httpx.Response) -> Image.Image:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert (r.headers["x-content-type-options"], r.headers["content-security-policy"]) == INERT
    return Image.open(io.BytesIO(r.content)).convert("RGB")


async def test_audio_and_video_are_probed_at_upload(dam: httpx.AsyncClient) -> None:
    wav = await upload(dam, make_wav(rate=16000, silence=1.0, tone=1.5, channels=2), "a/voice.wav")
    assert (wav["media_type"], wav["duration"], wav["sample_rate"], wav["channels"]) == ("audio", 2.5, 16000, 2)
    video = await upload(dam, make_video(seconds=3, fps=10, width=64, height=48))
    assert (video["media_type"], video["fps"], video["frame_count"], video["width"], video["height"],
            video["codec"]) == ("video", 10.0, 30, 64, 48, "h264")
    got = (await dam.get(f"/files/{video['md5']}")).json()
    assert got["duration"] == pytest.approx(3.0, abs=0.11) and got["fps"] == 10.0
    image = await upload(dam, make_png(40, 20))
    assert (image["width"], image["height"], image["duration"]) == (40, 20, None)


async def test_large_media_upload_is_probed_from_the_store(dam: httpx.AsyncClient) -> None:
    # 1.5 MB: past the 1 MB in-memory limit of the test DAM, so it streams through a temporary object
    data = make_wav(rate=48000, silence=8.0, tone=8.0)
    assert len(data) > 1024 * 1024
    body = await upload(dam, data)
    assert (body["duration"], body["sample_rate"], body["channels"]) == (16.0, 48000, 1)


async def test_undecodable_audio_is_stored_without_facts_and_422_on_preview(dam: httpx.AsyncClient) -> None:
    body = await upload(dam, b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + random_bytes(200))
    assert body["media_type"] == "audio" and body["duration"] is None
    r = await dam.get(f"/files/{body['md5']}/preview")
    assert r.status_code == 422 and r.json()["error"] == "PreviewUndecodable"


async def test_image_preview_is_a_sized_cached_png(dam: httpx.AsyncClient) -> None:
    body = await upload(dam, make_png(320, 200))
    img = png_of(await dam.get(f"/files/{body['md5']}/preview", params={"size": 100}))
    assert img.size == (128, 80)  # 100 is snapped up to 128
    assert close(img.getpixel((10, 40)), (255, 0, 0)) and close(img.getpixel((118, 40)), (0, 0, 255))
    assert png_of(await dam.get(f"/files/{body['md5']}/preview")).size == (256, 160)
    store = dam.app.state.store  # type: ignore[attr-defined]
    cached = sorted([k async for k in store.list(f"previews/{body['md5']}/")])
    assert cached == [f"previews/{body['md5']}/thumbnail-128.png", f"previews/{body['md5']}/thumbnail-256.png"]
    for bad in ({"size": 8}, {"size": 5000}, {"view": "waveform"}):
        assert (await dam.get(f"/files/{body['md5']}/preview", params=bad)).status_code == 422


async def test_waveform_and_spectrogram_mark_the_segment(dam: httpx.AsyncClient) -> None:
    body = await upload(dam, make_wav(rate=22050, silence=1.0, tone=1.0))  # 2 s on 800 px: 400 px a second
    for view in ("waveform", "spectrogram"):
        img = png_of(await dam.get(f"/files/{body['md5']}/preview",
                                   params={"view": view, "start": 1.0, "end": 1.5}))
        assert img.size == (800, 160)
        marked = [x for x in range(800) if img.getpixel((x, 1)) == media.SEGMENT_RGB]
        assert (marked[0], marked[-1], len(marked)) == (400, 599, 200), view
    plain = png_of(await dam.get(f"/files/{body['md5']}/preview"))
    assert all(plain.getpixel((x, 1)) == media.BACKGROUND_RGB for x in range(0, 800, 10))
    bad = await dam.get(f"/files/{body['md5']}/preview", params={"start": 1.5, "end": 1.0})
    assert bad.status_code == 422 and "start < end" in bad.json()["detail"]
    assert (await dam.get(f"/files/{body['md5']}/preview", params={"view": "poster"})).status_code == 422


async def test_video_poster_and_strip(dam: httpx.AsyncClient) -> None:
    body = await upload(dam, make_video(seconds=4, fps=10, width=64, height=48, fmt="webm"))
    for at, second in ((0.0, 0), (2.5, 2), (3.9, 3)):
        img = png_of(await dam.get(f"/files/{body['md5']}/preview", params={"view": "poster", "at": at}))
        assert img.size == (64, 48) and close(img.getpixel((32, 24)), VIDEO_COLOURS[second]), at
    # without `at` the poster is the frame at the segment start
    img = png_of(await dam.get(f"/files/{body['md5']}/preview", params={"start": 1.2, "end": 2.0}))
    assert close(img.getpixel((32, 24)), VIDEO_COLOURS[1])
    strip = png_of(await dam.get(f"/files/{body['md5']}/preview", params={"view": "strip", "frames": 4}))
    frame_width = round(64 * 96 / 48)
    assert strip.size == (4 * frame_width, 96)  # the whole video (its duration is known), 4 frames
    for i in range(4):
        assert close(strip.getpixel((i * frame_width + frame_width // 2, 48)), VIDEO_COLOURS[i])
    part = png_of(await dam.get(f"/files/{body['md5']}/preview",
                                params={"view": "strip", "start": 2.0, "end": 3.0, "frames": 2}))
    assert part.size == (2 * frame_width, 96)
    assert all(close(part.getpixel((x, 48)), VIDEO_COLOURS[2]) for x in (10, frame_width + 10))


async def test_text_json_and_table_previews_are_json_strings(dam: httpx.AsyncClient) -> None:
    doc = await upload(dam, b'{"html": "<script>alert(1)</script>"}')
    r = await dam.get(f"/files/{doc['md5']}/preview")
    assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
    assert r.json() == {"kind": "snippet", "snippet": '{\n  "html": "<script>alert(1)</script>"\n}',
                        "truncated": False}
    assert "<script>" not in r.text  # the JSON encoder escapes it
    long_text = await upload(dam, b"word " * 20000)
    snippet = (await dam.get(f"/files/{long_text['md5']}/preview")).json()
    assert snippet["truncated"] is True and len(snippet["snippet"]) == 2000
    rows = "".join(f"{i},cat{i}\n" for i in range(30))
    table = await upload(dam, ("id,label\n" + rows).encode(), "tables/t.csv")
    body = (await dam.get(f"/files/{table['md5']}/preview")).json()
    assert body["kind"] == "table" and body["columns"] == ["id", "label"]
    assert body["rows"][:2] == [["0", "cat0"], ["1", "cat1"]] and len(body["rows"]) == 20 and body["truncated"]


async def test_tensor_preview_image_or_summary(dam: httpx.AsyncClient) -> None:
    image = np.zeros((1, 3, 16, 24), dtype=np.float32)
    image[0, 1] = 1.0  # green
    buf = io.BytesIO()
    np.save(buf, image)
    body = await upload(dam, buf.getvalue())
    assert body["media_type"] == "tensor"
    img = png_of(await dam.get(f"/files/{body['md5']}/preview"))
    assert img.size == (24, 16) and img.getpixel((5, 5)) == (0, 255, 0)
    vec = io.BytesIO()
    np.save(vec, np.arange(10, dtype=np.int16))
    body = await upload(dam, vec.getvalue())
    for _ in range(2):  # made, then read from the cache
        r = await dam.get(f"/files/{body['md5']}/preview")
        assert r.json() == {"kind": "tensor", "shape": [10], "dtype": "int16", "min": 0, "max": 9}


async def test_nothing_to_preview_is_404(dam: httpx.AsyncClient) -> None:
    body = await upload(dam, b"\x00\x01\x02" + random_bytes(100))
    r = await dam.get(f"/files/{body['md5']}/preview")
    assert r.status_code == 404 and "no preview for binary files" in r.json()["detail"]
    assert (await dam.get(f"/files/{'0' * 32}/preview")).status_code == 404


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_content_serves_single_ranges(backend: str, dam: httpx.AsyncClient, dam_s3: httpx.AsyncClient) -> None:
    client = dam if backend == "local" else dam_s3
    data = make_wav(rate=8000, silence=0.5, tone=0.5) + b""
    body = await upload(client, data)
    url = f"/files/{body['md5']}/content"
    full = await client.get(url)
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    size = len(data)
    for header, first, last in (("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1), ("bytes=-50", size - 50, size - 1),
                                (f"bytes=10-{size + 500}", 10, size - 1)):
        r = await client.get(url, headers={"Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.content == data[first:last + 1]
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["x-content-type-options"] == "nosniff"
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0", "bytes=50-10"):
        r = await client.get(url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{size}"
    # several ranges, another unit, or a stale If-Range: the whole file
    for headers in ({"Range": "bytes=0-1,5-6"}, {"Range": "items=0-1"}, {"Range": "bytes=0-1", "If-Range": '"old"'}):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200 and r.content == data
    fresh = await client.get(url, headers={"Range": "bytes=0-3", "If-Range": f'"{md5(data)}"'})
    assert fresh.status_code == 206 and fresh.content == data[:4]
    assert json.loads((await client.get(f"/files/{body['md5']}")).text)["sample_rate"] == 8000


async def test_document_and_dataset_statistics_have_media_distributions(dam: httpx.AsyncClient) -> None:
    files = [make_wav(rate=16000, silence=0.5, tone=0.2), make_wav(rate=16000, silence=2.0, tone=1.0),
             make_wav(rate=44100, silence=0.1, tone=0.5), make_video(seconds=2, fps=10, width=64, height=48),
             make_video(seconds=6, fps=25, width=32, height=16, fmt="webm"), make_png(40, 20)]
    md5s = [str((await upload(dam, data))["md5"]) for data in files]
    rows = [{"md5": m, "annotation": label} for m, label in zip(md5s, "aabbcc", strict=True)]
    doc = await dam.post("/documents", params={"name": "recordings"}, json=rows)
    assert doc.status_code == 201, doc.text
    stats = (await dam.get(f"/documents/{doc.json()['id']}/stats")).json()
    expected = {"by_duration": {"<1s": 2, "1s-5s": 2, "5s-30s": 1}, "by_sample_rate": {"16000": 2, "44100": 1},
                "by_frame_rate": {"10": 1, "25": 1}, "by_resolution": {"64x48": 1, "32x16": 1}}
    assert {k: stats[k] for k in expected} == expected
    assert stats["by_dimensions"] == {"64x48": 1, "32x16": 1, "40x20": 1}
    assert stats["duration"]["count"] == 5 and stats["duration"]["min"] == pytest.approx(0.6)
    assert stats["duration"]["total"] == pytest.approx(0.7 + 3.0 + 0.6 + 2.0 + 6.0, abs=0.2)
    grouped = await dam.post("/datasets", json={"name": "recordings-ds", "documents": [{"id": doc.json()["id"]}],
                                                "split": {"test": 1.0}, "stratify": False})
    assert grouped.status_code == 201, grouped.text
    ds = (await dam.get(f"/datasets/{grouped.json()['datasets'][0]['id']}/stats")).json()
    assert {k: ds[k] for k in expected} == expected and ds["duration"] == stats["duration"]
