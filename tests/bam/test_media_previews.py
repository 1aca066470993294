"""Previews of what a badcase points at (audio, video, tensors, feature rows, served inputs), where the preview
lives, and Range on the data — checked by their pixels, on real PostgreSQL and BAM's object store."""

from __future__ import annotations

import hashlib
import io
import uuid

import httpx
import numpy as np
import pytest
from PIL import Image

from mlife_shared.media import SEGMENT_RGB
from mlife_shared.objectstore.base import iterate
from tests.bam.media import COLOURS, colour_video, npy, tone_wav, upload
from tests.support.bam import MD5, report


def image(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)


def near(pixel: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.abs(pixel - np.array(rgb)).max() <= tolerance)


async def test_audio_waveform_marks_the_segment_where_the_tone_is(bam: httpx.AsyncClient) -> None:
    b = (await upload(bam, tone_wav(seconds=3.0, burst=(1.0, 2.0)), "t.wav", segment_start=1.0,
                      segment_end=2.0)).json()
    px = image(await bam.get(f"/badcases/{b['id']}/preview"))
    assert px.shape[:2] == (160, 800)
    inside, outside = 400, 100  # x of 1.5 s and 0.375 s on 800 columns over 3 s
    assert near(px[3, inside], SEGMENT_RGB, 0) and near(px[3, outside], (255, 255, 255), 0)
    shaded = [x for x in range(800) if near(px[3, x], SEGMENT_RGB, 0)]
    assert (shaded[0], shaded[-1]) == (267, 532)

    def height(x: int) -> int:  # rows the wave covers in a column (neither background nor shade)
        return sum(1 for y in range(160)
                   if not near(px[y, x], SEGMENT_RGB, 0) and not near(px[y, x], (255, 255, 255), 0))
    loud = [x for x in range(800) if height(x) > 60]
    assert len(loud) > 250 and loud[0] >= 262 and loud[-1] <= 538, (loud[:3], loud[-3:])
    # cached in BAM's objects, and served from there the next time
    store = bam.app.state.store  # type: ignore[attr-defined]
    cached = [k async for k in store.list(f"previews/{b['data_md5']}/")]
    assert cached == [f"previews/{b['data_md5']}/waveform-s0-1.0-2.0.png"]
    await store.put(cached[0], iterate(b"\x89PNG cached"), content_type="image/png")
    assert (await bam.get(f"/badcases/{b['id']}/preview")).content == b"\x89PNG cached"


async def test_audio_spectrogram_is_bright_at_the_tone_inside_the_segment(bam: httpx.AsyncClient) -> None:
    b = (await upload(bam, tone_wav(seconds=3.0, burst=(1.0, 2.0), freq=1000.0), "t.wav", segment_start=1.0,
                      segment_end=2.0)).json()
    px = image(await bam.get(f"/badcases/{b['id']}/preview", params={"view": "spectrogram"}))
    row = round(160 - 1000 / 8000 * 160)  # 1 kHz of 0..8 kHz, low frequencies at the bottom
    band = px[row - 3:row + 3].sum(axis=2).max(axis=0)
    assert band[400] > band[100] + 200 and band[400] > band[700] + 200
    assert near(px[2, 400], SEGMENT_RGB, 0) and not near(px[2, 100], SEGMENT_RGB, 0)
    wrong = await bam.get(f"/badcases/{b['id']}/preview", params={"view": "poster"})
    assert wrong.status_code == 422 and "waveform, spectrogram" in wrong.json()["detail"]


@pytest.mark.parametrize("container", ["mp4", "webm"])
async def test_video_poster_is_the_frame_at_the_segment_start_and_the_strip_spans_it(bam: httpx.AsyncClient,
                                                                                    container: str) -> None:
    r = await upload(bam, colour_video(container, seconds=3, fps=10), f"v.{container}", segment_start=1.2,
                     segment_end=2.8)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["media_type"] == "video" and b["preview"]["source"] == "bam"
    poster = image(await bam.get(f"/badcases/{b['id']}/preview"))
    assert near(poster[poster.shape[0] // 2, poster.shape[1] // 2], COLOURS[1]), poster[10, 10]  # green: second 1-2
    at_start = image(await bam.get(f"/badcases/{b['id']}/preview", params={"view": "poster", "at": 0.1}))
    assert near(at_start[10, 10], COLOURS[0])
    strip = image(await bam.get(f"/badcases/{b['id']}/preview", params={"view": "strip", "frames": 4}))
    assert strip.shape[0] == 96 and strip.shape[1] >= 4 * 96
    quarter = strip.shape[1] // 4
    middles = [strip[48, quarter * i + quarter // 2] for i in range(4)]
    # frames at 1.4, 1.8, 2.2, 2.6 s: green, green, blue, blue
    assert [near(p, COLOURS[1]) for p in middles] == [True, True, False, False]
    assert [near(p, COLOURS[2]) for p in middles] == [False, False, True, True]


async def test_a_tensor_is_an_image_when_it_has_the_shape_of_one_else_a_summary(bam: httpx.AsyncClient) -> None:
    picture = np.zeros((3, 20, 30), np.float32)  # CHW, floats in 0..1
    picture[2] = 1.0
    b = (await upload(bam, npy(picture), "input.npy")).json()
    assert b["media_type"] == "tensor" and b["preview"] == {"source": "bam", "md5": b["data_md5"],
                                                            "media_type": "tensor"}
    px = image(await bam.get(f"/badcases/{b['id']}/preview"))
    assert px.shape[:2] == (20, 30) and near(px[10, 15], (0, 0, 255), 0)
    vector = (await upload(bam, npy(np.arange(7, dtype=np.int64)), "v.npy", ground_truth="other")).json()
    r = await bam.get(f"/badcases/{vector['id']}/preview")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"kind": "tensor", "shape": [7], "dtype": "int64", "min": 0, "max": 6}


async def test_a_tabular_badcase_previews_its_feature_row(bam: httpx.AsyncClient) -> None:
    b = (await bam.post("/badcases", json=report(data=[], features={"alcohol": 13.2, "colour": "red"}))).json()
    assert b["preview"] == {"source": "bam", "md5": None, "media_type": "table"}
    r = await bam.get(f"/badcases/{b['id']}/preview")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert r.json() == {"kind": "table", "columns": ["alcohol", "colour"], "rows": [[13.2, "red"]],
                        "truncated": False}


async def test_a_served_input_is_read_from_the_store_and_rendered(bam: httpx.AsyncClient) -> None:
    raw = bam.app.state.raw_store  # type: ignore[attr-defined]
    key = f"msm/feedback/{uuid.uuid4()}/input.npy"
    picture = np.full((8, 8), 200, np.uint8)
    await raw.put(key, iterate(npy(picture)))
    b = (await bam.post("/badcases", json=report(data=[{"kind": "key", "value": key}]))).json()
    assert b["preview"] == {"source": "bam", "md5": None, "media_type": "tensor"}
    px = image(await bam.get(f"/badcases/{b['id']}/preview", params={"size": 64}))
    assert px.shape[:2] == (8, 8) and near(px[4, 4], (200, 200, 200), 0)
    gone = (await bam.post("/badcases", json=report(data=[{"kind": "key", "value": "msm/feedback/x/input.npy"}],
                                                    ground_truth="x"))).json()
    r = await bam.get(f"/badcases/{gone['id']}/preview")
    assert r.status_code == 404 and "not in the object store" in r.json()["detail"]


async def test_the_preview_source_says_who_holds_the_data(bam: httpx.AsyncClient) -> None:
    dam = (await bam.post("/badcases", json=report())).json()
    assert dam["preview"] == {"source": "dam", "md5": MD5, "media_type": "image"}
    r = await bam.get(f"/badcases/{dam['id']}/preview")
    assert r.status_code == 404 and f"/api/dam/files/{MD5}/preview" in r.json()["detail"]
    tensor = npy(np.zeros((4, 4), np.uint8))
    md5 = hashlib.md5(tensor).hexdigest()
    named = (await bam.post("/badcases", json=report(data=[{"kind": "md5", "value": md5}], ground_truth="z"))).json()
    assert named["preview"] == {"source": "dam", "md5": md5, "media_type": None}
    uploaded = (await upload(bam, tensor, "x.npy", ground_truth="z")).json()  # the same badcase, its file now in BAM
    assert uploaded["merged_into"] == named["id"]
    assert uploaded["preview"] == {"source": "bam", "md5": md5, "media_type": "tensor"}
    assert (await bam.get(f"/badcases/{named['id']}/preview")).status_code == 200
    url = (await bam.post("/badcases", json=report(data=[{"kind": "url", "value": "https://x.test/a.png"}],
                                                   ground_truth="y"))).json()
    assert url["preview"] is None
    listed = {b["id"]: b["preview"] for b in (await bam.get("/badcases")).json()["items"]}
    assert listed[dam["id"]]["source"] == "dam" and listed[url["id"]] is None


async def test_data_answers_byte_ranges(bam: httpx.AsyncClient) -> None:
    wav = tone_wav(seconds=1.0)
    b = (await upload(bam, wav, "t.wav")).json()
    url = f"/badcases/{b['id']}/data"
    whole = await bam.get(url)
    assert whole.status_code == 200 and whole.content == wav and whole.headers["accept-ranges"] == "bytes"
    part = await bam.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == wav[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(wav)}" and part.headers["content-length"] == "100"
    assert part.headers["x-content-type-options"] == "nosniff"
    tail = await bam.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == wav[-10:]
    open_end = await bam.get(url, headers={"Range": f"bytes={len(wav) - 5}-"})
    assert open_end.status_code == 206 and open_end.content == wav[-5:]
    past = await bam.get(url, headers={"Range": f"bytes={len(wav)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(wav)}"
    ignored = await bam.get(url, headers={"Range": "bytes=0-1,5-9"})
    assert ignored.status_code == 200 and ignored.content == wav
