"""Audio/video segments on real PostgreSQL: validation on every way in, overlap dedup, the segment in "add to test
data", and the overlay shapes predictions may carry."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest

from tests.bam.media import audio_ref, colour_video, tone_wav, upload
from tests.support.bam import MD5, report
from tests.support.outbox import outbox_events

OTHER = "fedcba9876543210fedcba9876543210"


def seg(start: float, end: float, md5: str = MD5, **kw: object) -> dict[str, object]:
    return report(**{"data": audio_ref(md5), "segment_start": start, "segment_end": end, **kw})


@pytest.mark.parametrize(("body", "says"), [
    (seg(2.0, 1.0), "segment_start (2.0) is after segment_end (1.0)"),
    (report(data=audio_ref(MD5), segment_start=1.0), "give both segment_start and segment_end"),
    (seg(1.0, 5.0, duration=3.0), "past the end of the recording"),
    (seg(-1.0, 1.0), "greater than or equal to 0"),
    (report(data=audio_ref(MD5), frame_start=3, frame_end=9), "a frame range is for video data only"),
    (report(data=audio_ref(MD5, "video"), frame_start=9, frame_end=3), "frame_start (9) is after frame_end (3)"),
    (seg(1.0, 2.0, data=[{"kind": "md5", "value": MD5, "media_type": "image"}]), "for audio or video data"),
    (report(data=[], segment_start=0.0, segment_end=1.0), "a segment is a part of audio or video data"),
])
async def test_a_bad_segment_is_a_422_that_says_what_to_fix(bam: httpx.AsyncClient, body: dict[str, object],
                                                            says: str) -> None:
    r = await bam.post("/badcases", json=body)
    assert r.status_code == 422, r.text
    assert says in r.text


async def test_an_uploaded_recording_is_probed_and_a_segment_past_its_end_refused(bam: httpx.AsyncClient,
                                                                               tmp_path: Path) -> None:
    wav = tone_wav(seconds=3.0)
    r = await upload(bam, wav, "a.wav", segment_start=2.5, segment_end=3.5, duration=10.0)
    assert r.status_code == 422 and "past the end of the recording (3.000 s)" in r.json()["detail"], r.text
    # Nothing partial: the refused report's file is not left in BAM's objects.
    assert not [p for p in (tmp_path / "objects").rglob("*") if hashlib.md5(wav).hexdigest() in p.name]
    r = await upload(bam, wav, "a.wav", segment_start=1.0, segment_end=2.0)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["media_type"] == "audio" and b["duration"] == pytest.approx(3.0, abs=0.01)
    assert (b["segment_start"], b["segment_end"]) == (1.0, 2.0)
    assert b["preview"] == {"source": "bam", "md5": b["data_md5"], "media_type": "audio"}
    r = await upload(bam, wav, "a.wav", frame_start=0, frame_end=10)
    assert r.status_code == 422 and "frame range is for video data only" in r.json()["detail"]


async def test_a_video_frame_range_is_checked_against_its_frames_and_gets_seconds(bam: httpx.AsyncClient) -> None:
    mp4 = colour_video("mp4", seconds=3, fps=10)
    r = await upload(bam, mp4, "v.mp4", frame_start=25, frame_end=30)
    assert r.status_code == 422 and "past the last frame of the video (29" in r.json()["detail"], r.text
    r = await upload(bam, mp4, "v.mp4", frame_start=10, frame_end=14)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["media_type"] == "video" and (b["frame_start"], b["frame_end"]) == (10, 14)
    assert b["segment_start"] == pytest.approx(1.0) and b["segment_end"] == pytest.approx(1.5)
    # an overlapping frame range of the same file is the same badcase
    again = (await upload(bam, mp4, "v.mp4", frame_start=14, frame_end=20)).json()
    assert again["merged_into"] == b["id"] and again["frequency"] == 2
    assert (again["frame_start"], again["frame_end"]) == (10, 20)


async def test_overlapping_segments_of_one_file_are_one_badcase_disjoint_ones_two(bam: httpx.AsyncClient) -> None:
    first = await bam.post("/badcases", json=seg(1.0, 2.0, duration=10.0))
    assert first.status_code == 201, first.text
    a = first.json()
    merged = await bam.post("/badcases", json=seg(1.5, 3.0))
    assert merged.status_code == 200 and merged.json()["merged_into"] == a["id"]
    union = merged.json()
    assert union["frequency"] == 2 and (union["segment_start"], union["segment_end"]) == (1.0, 3.0)
    assert union["duration"] == 10.0
    disjoint = await bam.post("/badcases", json=seg(5.0, 6.0))
    assert disjoint.status_code == 201 and disjoint.json()["id"] != a["id"]
    # the same segment of another file, or the whole file without a segment, is another badcase
    assert (await bam.post("/badcases", json=seg(1.0, 2.0, md5=OTHER))).status_code == 201
    whole = await bam.post("/badcases", json=report(data=audio_ref(MD5)))
    assert whole.status_code == 201 and whole.json()["segment_start"] is None
    occurrences = (await bam.get(f"/badcases/{a['id']}/occurrences")).json()
    assert sorted((o["segment_start"], o["segment_end"]) for o in occurrences) == [(1.0, 2.0), (1.5, 3.0)]
    listed = (await bam.get("/badcases", params={"has_segment": "true"})).json()["items"]
    assert len(listed) == 3 and all(b["segment_start"] is not None for b in listed)
    assert [b["id"] for b in (await bam.get("/badcases", params={"has_segment": "false"})).json()["items"]] == [
        whole.json()["id"]]


async def test_racing_overlapping_reports_make_one_badcase(bam: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*[bam.post("/badcases", json=seg(1.0 + i / 10, 2.0 + i / 10)) for i in range(6)])
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    b = (await bam.get(f"/badcases/{ids.pop()}")).json()
    assert b["frequency"] == 6 and (b["segment_start"], b["segment_end"]) == (1.0, 2.5)


async def test_import_takes_segments_and_merges_overlapping_rows(bam: httpx.AsyncClient) -> None:
    csv = ("function,data,ground_truth,prediction,segment_start,segment_end,duration\n"
           f"asr,md5:{MD5},hello,hollow,1.0,2.0,10\n"
           f"asr,md5:{MD5},hello,hollow,1.8,2.6,\n"
           f"asr,md5:{MD5},hello,hollow,7,8,\n"
           f"asr,md5:{MD5},hello,hollow,4,3,\n"
           f"asr,md5:{MD5},hello,hollow,,,\n")
    r = await bam.post("/badcases/import", content=csv.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["created"], result["merged"], result["failed"]) == (3, 1, 1), result
    assert result["errors"][0]["row"] == 4 and "segment_start (4.0) is after segment_end (3.0)" in result["errors"][0][
        "error"]
    items = (await bam.get("/badcases", params={"function": "asr", "has_segment": "true",
                                                "sort": "first_seen"})).json()["items"]
    spans = sorted((b["segment_start"], b["segment_end"], b["frequency"]) for b in items)
    assert spans == [(1.0, 2.6, 2), (7.0, 8.0, 1)]


async def test_add_to_test_data_sends_the_segment(bam: httpx.AsyncClient, bam_db: str) -> None:
    audio = (await bam.post("/badcases", json=seg(1.0, 2.0, duration=3.0))).json()
    video = (await bam.post("/badcases", json=report(data=audio_ref(OTHER, "video"), frame_start=5, frame_end=9,
                                                     ground_truth="cat"))).json()
    plain = (await bam.post("/badcases", json=report(ground_truth="dog"))).json()
    r = await bam.post("/badcases/add-to-test-data", json={"ids": [audio["id"], video["id"], plain["id"]]})
    assert r.status_code == 200 and r.json()["added"] == 3, r.text
    items = {i["badcase_id"]: i for i in (await outbox_events(bam_db, "badcase.test_data_requested"))[0]["data"][
        "items"]}
    a, v, p = items[audio["id"]], items[video["id"]], items[plain["id"]]
    assert (a["segment_start"], a["segment_end"], a["duration"], a["frame_start"]) == (1.0, 2.0, 3.0, None)
    assert (v["frame_start"], v["frame_end"], v["segment_start"]) == (5, 9, None)
    assert (p["segment_start"], p["frame_start"], p["duration"]) == (None, None, None)


async def test_detection_boxes_and_text_spans_are_taken_in_their_documented_shapes(bam: httpx.AsyncClient) -> None:
    boxes = {"boxes": [{"label": "cat", "box": [10, 20, 110, 90], "score": 0.9}]}
    truth = {"boxes": [{"label": "cat", "box": [12, 22, 108, 95]}, {"label": "dog", "box": [0, 0, 5.5, 5]}]}
    r = await bam.post("/badcases", json=report(prediction=boxes, ground_truth=truth))
    assert r.status_code == 201 and r.json()["prediction"] == boxes and r.json()["ground_truth"] == truth
    mtt = {"boxes": [[1, 2, 3, 4]], "labels": ["cat"], "scores": [0.5]}
    assert (await bam.post("/badcases", json=report(prediction=mtt, ground_truth="none"))).status_code == 201
    spans = {"spans": [{"start": 3, "end": 9, "label": "PER"}]}
    r = await bam.post("/badcases", json=report(data=[], prediction={"spans": []}, ground_truth=spans,
                                                features={"text": "Hi, Ada Lovelace here"}))
    assert r.status_code == 201 and r.json()["ground_truth"] == spans
    bad_box = await bam.post("/badcases", json=report(prediction={"boxes": [{"label": "cat", "box": [1, 2, 3]}]}))
    assert bad_box.status_code == 422 and "boxes[0]" in bad_box.text
    bad_span = await bam.post("/badcases", json=report(ground_truth={"spans": [{"start": 9, "end": 3}]}))
    assert bad_span.status_code == 422 and "spans[0]" in bad_span.text
    doc = bam.app.openapi()["components"]["schemas"]["BadcaseCreate"]["properties"]  # type: ignore[attr-defined]
    assert '"boxes"' in doc["prediction"]["description"] and '"spans"' in doc["ground_truth"]["description"]
