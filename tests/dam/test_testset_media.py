"""Audio/video badcases with a segment on their way to test data, through the real consumer (NATS JetStream,
PostgreSQL): the per-function conversion setting, the stored clip's rate and length, the frames' count and
pixels, the provenance of each test item, and the failure that stores nothing."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from mlife_shared import media
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.events.contracts import TestDataItem as DataItem
from tests.dam.test_testset import js, run_until  # noqa: F401 - the fixture
from tests.shared.media_factory import VIDEO_COLOURS, close, make_video, make_wav
from tests.support.auth import as_role
from tests.support.nats import publish

__all__ = ["js"]


async def upload(dam: httpx.AsyncClient, data: bytes) -> str:
    r = await dam.post("/files", content=data)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["md5"])


async def rows_of(dam: httpx.AsyncClient, function: str) -> list[dict[str, Any]]:
    docs = (await dam.get("/documents", params={"kind": "badcase test set"})).json()
    doc = next(d for d in docs if d["function"] == function)
    rows: list[dict[str, Any]] = (await dam.get(f"/documents/{doc['id']}/rows", params={"limit": 100})).json()["items"]
    return sorted(rows, key=lambda r: (r["extra"]["badcase_id"], r["extra"].get("frame_time") or 0))


async def appended(dam: httpx.AsyncClient, function: str) -> bool:
    docs = (await dam.get("/documents", params={"kind": "badcase test set"})).json()
    return any(d["function"] == function for d in docs)


async def test_conversion_settings_defaults_put_and_roles(dam: httpx.AsyncClient) -> None:
    r = await dam.get("/test-data-conversions/speech")
    assert r.status_code == 200
    assert r.json() | {"updated_at": None} == {"function": "speech", "is_default": True, "video": {"mode": "frames", "fps": 1.0},
                                               "audio": {"sample_rate": None}, "updated_by": None, "updated_at": None}
    body = {"video": {"mode": "clip", "fps": 2.0}, "audio": {"sample_rate": 16000}}
    denied = await dam.put("/test-data-conversions/speech", json=body, headers=as_role("engineer"))
    assert denied.status_code == 403
    put = await dam.put("/test-data-conversions/speech", json=body, headers=as_role("maintainer", "mia"))
    assert put.status_code == 200, put.text
    assert put.json()["is_default"] is False and put.json()["updated_by"] == "mia"
    got = (await dam.get("/test-data-conversions/speech")).json()
    assert (got["video"], got["audio"]) == (body["video"], body["audio"])
    again = await dam.put("/test-data-conversions/speech", json={"audio": {"sample_rate": 8000}},
                          headers=as_role("maintainer", "max"))
    assert again.status_code == 200 and again.json()["updated_by"] == "max"
    assert again.json()["video"] == {"mode": "frames", "fps": 1.0} and again.json()["audio"] == {"sample_rate": 8000}
    for bad in ({"video": {"mode": "gif"}}, {"video": {"fps": 0}}, {"audio": {"sample_rate": 10}}, {"other": 1}):
        r = await dam.put("/test-data-conversions/speech", json=bad, headers=as_role("maintainer"))
        assert r.status_code == 422, bad


async def test_audio_and_video_segments_are_converted_with_provenance(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    wav = make_wav(rate=22050, silence=1.0, tone=1.0)
    video = make_video(seconds=4, fps=10, width=64, height=48)
    wav_md5, video_md5 = await upload(dam, wav), await upload(dam, video)
    await dam.put("/test-data-conversions/listen", json={"audio": {"sample_rate": 16000}},
                  headers=as_role("maintainer"))
    await dam.put("/test-data-conversions/watch", json={"video": {"mode": "frames", "fps": 2.0}},
                  headers=as_role("maintainer"))
    a, v, whole, frames_item = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=a, data_refs=[f"md5:{wav_md5}"], ground_truth="beep", function="listen",
                 segment_start=0.75, segment_end=1.5, duration=2.0),
        DataItem(badcase_id=v, data_refs=[f"md5:{video_md5}"], ground_truth="blue", function="watch",
                 segment_start=1.0, segment_end=3.0),
        DataItem(badcase_id=frames_item, data_refs=[f"md5:{video_md5}"], ground_truth="yellow", function="watch",
                 frame_start=30, frame_end=34),  # 3.0 s .. 3.5 s
        DataItem(badcase_id=whole, data_refs=[f"md5:{wav_md5}"], ground_truth="all", function="plain"),
    ]))

    async def _done() -> bool:
        return all([await appended(dam, f) for f in ("listen", "watch", "plain")])

    await run_until(dam, dam_db, js, _done)

    # audio: one 16 kHz WAV of 0.75 s, recorded as cut from the source
    [clip] = await rows_of(dam, "listen")
    assert clip["label"] == "beep" and clip["md5"] != wav_md5
    assert {k: clip["extra"][k] for k in ("source_md5", "segment_start", "segment_end", "converted", "sample_rate")} == {
        "source_md5": wav_md5, "segment_start": 0.75, "segment_end": 1.5, "converted": "audio clip", "sample_rate": 16000}
    data = (await dam.get(f"/files/{clip['md5']}/content")).content
    info = media.wav_info(data)
    assert info["sample_rate"] == 16000 and abs(info["frames"] - 0.75 * 16000) <= 160
    stored = (await dam.get(f"/files/{clip['md5']}")).json()
    assert (stored["media_type"], stored["sample_rate"]) == ("audio", 16000)

    # video at 2 fps over [1, 3): 4 frames, then [3.0, 3.5) from the frame range: 1 frame
    rows = await rows_of(dam, "watch")
    by_item = {str(v): [r for r in rows if r["extra"]["badcase_id"] == str(v)],
               str(frames_item): [r for r in rows if r["extra"]["badcase_id"] == str(frames_item)]}
    seg = by_item[str(v)]
    assert [r["extra"]["frame_time"] for r in seg] == [1.0, 1.5, 2.0, 2.5]
    assert [r["extra"]["frame_index"] for r in seg] == [10, 15, 20, 25]
    assert all(r["extra"]["source_md5"] == video_md5 and r["extra"]["converted"] == "video frame"
               and (r["extra"]["segment_start"], r["extra"]["segment_end"]) == (1.0, 3.0) for r in seg)
    for r, second in zip(seg, (1, 1, 2, 2), strict=True):
        img = Image.open(io.BytesIO((await dam.get(f"/files/{r['md5']}/content")).content)).convert("RGB")
        assert img.size == (64, 48) and close(img.getpixel((32, 24)), VIDEO_COLOURS[second])
    [frame] = by_item[str(frames_item)]
    assert (frame["extra"]["segment_start"], frame["extra"]["segment_end"], frame["extra"]["frame_index"]) == (3.0, 3.5, 30)
    img = Image.open(io.BytesIO((await dam.get(f"/files/{frame['md5']}/content")).content)).convert("RGB")
    assert close(img.getpixel((32, 24)), VIDEO_COLOURS[3])

    # no segment: the recording itself, as before
    [plain] = await rows_of(dam, "plain")
    assert plain["md5"] == wav_md5 and "source_md5" not in plain["extra"]
    doc = next(d for d in (await dam.get("/documents", params={"kind": "badcase test set"})).json()
               if d["function"] == "watch")
    assert {"source_md5", "segment_start", "segment_end", "frame_index", "frame_time"} <= set(doc["columns"])


async def test_video_clip_mode_stores_a_webm_of_the_segment(
        dam: httpx.AsyncClient, dam_db: str, js) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    video_md5 = await upload(dam, make_video(seconds=4, fps=10, width=64, height=48, fmt="webm"))
    await dam.put("/test-data-conversions/clips", json={"video": {"mode": "clip"}}, headers=as_role("maintainer"))
    b = uuid.uuid4()
    await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=b, data_refs=[f"md5:{video_md5}"], ground_truth="green", function="clips",
                 segment_start=1.0, segment_end=2.0)]))

    async def _done() -> bool:
        return await appended(dam, "clips")

    await run_until(dam, dam_db, js, _done)
    [row] = await rows_of(dam, "clips")
    assert row["extra"]["converted"] == "video clip" and row["extra"]["source_md5"] == video_md5
    stored = (await dam.get(f"/files/{row['md5']}")).json()
    assert (stored["media_type"], stored["content_type"], stored["codec"], stored["frame_count"]) == (
        "video", "video/webm", "vp8", 10)
    poster = Image.open(io.BytesIO((await dam.get(f"/files/{row['md5']}/preview", params={"view": "poster"})).content))
    assert close(poster.convert("RGB").getpixel((32, 24)), VIDEO_COLOURS[1])


@pytest.mark.parametrize("segment", [(5.0, 6.0), (1.5, 1.0)])
async def test_an_unconvertible_segment_is_dead_lettered_and_stores_nothing(
        dam: httpx.AsyncClient, dam_db: str, js, segment: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]  # noqa: F811,E501
    wav_md5 = await upload(dam, make_wav(rate=8000, silence=1.0, tone=1.0))
    video_md5 = await upload(dam, make_video(seconds=2, fps=10))
    before = {f["md5"] for f in (await dam.get("/files")).json()}
    event_id = await publish(js, BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[
        DataItem(badcase_id=uuid.uuid4(), data_refs=[f"md5:{video_md5}"], ground_truth="ok", function="mixed",
                 segment_start=0.0, segment_end=1.0),
        DataItem(badcase_id=uuid.uuid4(), data_refs=[f"md5:{wav_md5}"], ground_truth="bad", function="mixed",
                 segment_start=segment[0], segment_end=segment[1])]))

    async def _dead() -> bool:
        return any(d["event_id"] == str(event_id) for d in (await dam.get("/dead-letters")).json())

    await run_until(dam, dam_db, js, _dead)
    letter = next(d for d in (await dam.get("/dead-letters")).json() if d["event_id"] == str(event_id))
    assert "is empty" in letter["error"] and "cannot be resolved" not in letter["error"]
    assert not await appended(dam, "mixed")
    assert {f["md5"] for f in (await dam.get("/files")).json()} == before  # the video's frames were not kept
    store = dam.app.state.store  # type: ignore[attr-defined]
    assert sorted([k async for k in store.list("files/")]) == sorted(f"files/{m}" for m in before)


async def test_conversion_settings_on_sqlite(dam_sqlite: httpx.AsyncClient) -> None:
    for fps in (2.0, 5.0):  # an insert, then an update of the same function
        r = await dam_sqlite.put("/test-data-conversions/embedded", json={"video": {"mode": "frames", "fps": fps}},
                                 headers=as_role("maintainer"))
        assert r.status_code == 200, r.text
        assert (await dam_sqlite.get("/test-data-conversions/embedded")).json()["video"]["fps"] == fps
