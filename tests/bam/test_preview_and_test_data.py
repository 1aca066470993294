"""Preview, download and "add to test data", on real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.support.bam import png, post_with_data, report
from tests.support.outbox import outbox_events


async def test_image_preview_is_a_cached_png_thumbnail(bam: httpx.AsyncClient) -> None:
    b = (await post_with_data(bam, png(size=600))).json()
    r = await bam.get(f"/badcases/{b['id']}/preview")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.content.startswith(b"\x89PNG")
    import io

    from PIL import Image

    assert max(Image.open(io.BytesIO(r.content)).size) == 256
    again = await bam.get(f"/badcases/{b['id']}/preview")
    assert again.content == r.content
    store = bam.app.state.store  # type: ignore[attr-defined]
    assert await store.stat(f"thumbnails/{b['data_md5']}-256.png") is not None


async def test_text_preview_is_a_json_snippet_and_html_is_never_rendered(bam: httpx.AsyncClient) -> None:
    html = b"<html><script>alert(1)</script>" + b"x" * 5000
    body = report(data=[])
    r = await bam.post("/badcases/with-data", data={"report": json.dumps(body)},
                       files={"file": ("page.html", html, "text/html")})
    b = r.json()
    assert b["media_type"] == "text"
    p = await bam.get(f"/badcases/{b['id']}/preview")
    assert p.headers["content-type"] == "application/json"
    assert p.json()["snippet"].startswith("<html><script>") and p.json()["truncated"] is True
    d = await bam.get(f"/badcases/{b['id']}/data")
    assert d.headers["content-type"] == "application/octet-stream"
    assert d.headers["content-disposition"].startswith("attachment")
    assert d.headers["x-content-type-options"] == "nosniff" and d.content == html


async def test_no_stored_data_means_404_that_says_why(bam: httpx.AsyncClient) -> None:
    b = (await bam.post("/badcases", json=report())).json()
    r = await bam.get(f"/badcases/{b['id']}/preview")
    assert r.status_code == 404 and r.json()["error"] == "NoPreview" and "with-data" in r.json()["detail"]


async def test_oversized_data_is_413_and_leaves_nothing(bam: httpx.AsyncClient) -> None:
    bam.app.state.settings.max_data_bytes = 1000  # type: ignore[attr-defined]
    r = await post_with_data(bam, b"x" * 5000)
    assert r.status_code == 413 and r.json()["error"] == "DataTooLarge"
    assert (await bam.get("/badcases")).json()["items"] == []
    store = bam.app.state.store  # type: ignore[attr-defined]
    assert [k async for k in store.list("")] == []


async def test_add_to_test_data_by_ids_and_by_filter(bam: httpx.AsyncClient, bam_db: str) -> None:
    with_file = (await post_with_data(bam, png())).json()
    by_ref = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    no_data = (await bam.post("/badcases", json=report(data=[], ground_truth="calm", function="ocr"))).json()
    r = await bam.post("/badcases/add-to-test-data", json={"ids": [with_file["id"], by_ref["id"], no_data["id"]]})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["added"] == 2 and [s["id"] for s in result["skipped"]] == [no_data["id"]]
    events = await outbox_events(bam_db, "badcase.test_data_requested")
    assert len(events) == 1
    items = {i["badcase_id"]: i for i in events[0]["data"]["items"]}
    assert items[by_ref["id"]]["ground_truth"] == "angry" and items[by_ref["id"]]["function"] == "emotion"
    assert f"key:bam/data/{with_file['data_md5']}" in items[with_file["id"]]["data_refs"]
    assert (await bam.get(f"/badcases/{by_ref['id']}")).json()["added_to_test_data_at"] is not None
    r = await bam.post("/badcases/add-to-test-data", json={"filter": {"label": "angry"}})
    assert r.json()["added"] == 1
    assert len(await outbox_events(bam_db, "badcase.test_data_requested")) == 2


async def test_add_to_test_data_rejects_bad_requests(bam: httpx.AsyncClient, bam_db: str) -> None:
    b = (await bam.post("/badcases", json=report(data=[]))).json()
    assert (await bam.post("/badcases/add-to-test-data", json={})).status_code == 422
    both = {"ids": [b["id"]], "filter": {"function": "x"}}
    assert (await bam.post("/badcases/add-to-test-data", json=both)).status_code == 422
    r = await bam.post("/badcases/add-to-test-data", json={"ids": [b["id"], str(uuid.uuid4())]})
    assert r.status_code == 422 and r.json()["error"] == "NothingToAdd"
    nul = await bam.post("/badcases/add-to-test-data", json={"filter": {"q": "a\u0000b"}})
    assert nul.status_code == 422 and "NUL" in nul.text
    assert (await bam.get("/badcases", params={"q": "a\x00b"})).status_code == 422  # refused for every route
    assert await outbox_events(bam_db, "badcase.test_data_requested") == []


async def test_test_data_items_carry_the_function_and_a_tabular_badcases_features(bam: httpx.AsyncClient,
                                                                                  bam_db: str) -> None:
    row = {"alcohol": 13.2, "hue": 1.04}
    tabular = (await bam.post("/badcases", json=report(function="wine", data=[], features=row,
                                                       ground_truth="7", prediction="5"))).json()
    image = (await bam.post("/badcases", json=report(function="digits"))).json()
    unassigned = (await bam.post("/badcases", json=report(function="unassigned", ground_truth="x"))).json()
    nothing = (await bam.post("/badcases", json=report(function="wine", data=[], ground_truth="6"))).json()
    r = await bam.post("/badcases/add-to-test-data",
                       json={"ids": [tabular["id"], image["id"], unassigned["id"], nothing["id"]]})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2
    skipped = {s["id"]: s["reason"] for s in r.json()["skipped"]}
    assert set(skipped) == {unassigned["id"], nothing["id"]}
    assert "function" in skipped[unassigned["id"]] and "neither data references nor features" in skipped[nothing["id"]]
    event = (await outbox_events(bam_db, "badcase.test_data_requested"))[0]
    items = {i["badcase_id"]: i for i in event["data"]["items"]}
    assert items[tabular["id"]]["function"] == "wine" and items[tabular["id"]]["features"] == row
    assert items[tabular["id"]]["data_refs"] == [] and items[tabular["id"]]["ground_truth"] == "7"
    assert items[image["id"]]["function"] == "digits" and items[image["id"]]["features"] is None
    assert (await bam.get(f"/badcases/{nothing['id']}")).json()["added_to_test_data_at"] is None
    only_unaddable = await bam.post("/badcases/add-to-test-data", json={"ids": [unassigned["id"], nothing["id"]]})
    assert only_unaddable.status_code == 422 and only_unaddable.json()["error"] == "NothingToAdd"
    assert len(await outbox_events(bam_db, "badcase.test_data_requested")) == 1


async def test_test_data_events_fit_a_message_however_large_the_feature_rows(bam: httpx.AsyncClient,
                                                                             bam_db: str) -> None:
    """40 tabular badcases of ~40 KiB of features each: one event of them would be ~1.6 MiB, over NATS's 1 MiB."""
    ids = []
    for i in range(40):
        features = {f"f{j}": "x" * 32 + str(i) for j in range(1000)}
        r = await bam.post("/badcases", json=report(function="wide", data=[], features=features, ground_truth=str(i)))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = await bam.post("/badcases/add-to-test-data", json={"ids": ids})
    assert r.status_code == 200 and r.json()["added"] == 40, r.text
    events = await outbox_events(bam_db, "badcase.test_data_requested")
    assert len(events) == len(r.json()["request_ids"]) > 1
    assert all(len(json.dumps(e)) < 512 * 1024 for e in events)
    sent = [i["badcase_id"] for e in events for i in e["data"]["items"]]
    assert sorted(sent) == sorted(ids)


async def test_badcases_dam_cannot_store_are_skipped_not_sent_to_fail_the_whole_event(bam: httpx.AsyncClient,
                                                                                     bam_db: str) -> None:
    """DAM's badcase test set takes feature names that are column names; one item it cannot store would
    dead-letter every other item of the event. (A function name DAM cannot use is refused when it is filed.)"""
    good = (await bam.post("/badcases", json=report(function="wine", data=[], features={"alcohol": 9.4},
                                                    ground_truth="5"))).json()
    too_long = await bam.post("/badcases", json=report(function="f" * 150))  # refused at the door since the shared rule
    assert too_long.status_code == 422 and "function" in too_long.text
    odd_columns = (await bam.post("/badcases", json=report(function="wine", data=[], ground_truth="6",
                                                           features={"alcohol %": 9.4, "pH": 3.1}))).json()
    r = await bam.post("/badcases/add-to-test-data", json={"ids": [good["id"], odd_columns["id"]]})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1
    skipped = {s["id"]: s["reason"] for s in r.json()["skipped"]}
    assert "'alcohol %'" in skipped[odd_columns["id"]] and "pH" not in skipped[odd_columns["id"]]
    event = (await outbox_events(bam_db, "badcase.test_data_requested"))[0]
    assert [i["badcase_id"] for i in event["data"]["items"]] == [good["id"]]
