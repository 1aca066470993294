"""Recording, dedup, priority, triage and retrieval, on real PostgreSQL."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from PIL import Image, ImageDraw

from bam.badcase.filters import BadcaseFilter
from mlife_shared.db import make_engine
from tests.support.auth import as_role
from tests.support.bam import png, post_with_data, report


async def outbox_subjects(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT subject FROM outbox ORDER BY seq"))).scalars().all()
    await engine.dispose()
    return list(rows)


async def test_new_report_is_201_and_emits_badcase_created(bam: httpx.AsyncClient, bam_db: str) -> None:
    r = await bam.post("/badcases", json=report(tags=["mask", "night"]))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["status"] == "new" and b["frequency"] == 1 and b["merged_into"] is None
    assert b["reporter"] == "tess" and b["source"] == "manual" and b["tags"] == ["mask", "night"]
    assert await outbox_subjects(bam_db) == ["badcase.created"]


async def test_same_report_merges_with_200(bam: httpx.AsyncClient, bam_db: str) -> None:
    first = (await bam.post("/badcases", json=report())).json()
    again = await bam.post("/badcases", json=report(description="  DRIVER wears   a mask!  ", tags=["x"],
                                                    prediction={"label": "HAPPY"}))
    assert again.status_code == 200
    merged = again.json()
    assert merged["merged_into"] == first["id"] == merged["id"]
    assert merged["frequency"] == 2 and merged["description"] == "Driver wears a mask"
    assert merged["priority"] > first["priority"]
    occurrences = (await bam.get(f"/badcases/{first['id']}/occurrences")).json()
    assert len(occurrences) == 2
    assert await outbox_subjects(bam_db) == ["badcase.created", "badcase.merged"]


async def test_different_ground_truth_or_data_is_a_new_badcase(bam: httpx.AsyncClient) -> None:
    a = await bam.post("/badcases", json=report())
    b = await bam.post("/badcases", json=report(ground_truth="angry"))
    c = await bam.post("/badcases", json=report(data=[{"kind": "md5", "value": "f" * 32}]))
    assert {a.status_code, b.status_code, c.status_code} == {201}
    assert len({a.json()["id"], b.json()["id"], c.json()["id"]}) == 3


async def test_near_duplicate_image_merges_but_a_different_picture_does_not(bam: httpx.AsyncClient) -> None:
    first = await post_with_data(bam, png())
    assert first.status_code == 201, first.text
    assert first.json()["media_type"] == "image" and first.json()["data_md5"]
    resized = await post_with_data(bam, png(quality_noise=1))  # other bytes, same picture
    assert resized.status_code == 200 and resized.json()["merged_into"] == first.json()["id"]
    other = Image.new("RGB", (128, 128), "black")
    ImageDraw.Draw(other).rectangle([0, 0, 64, 128], fill="white")
    buf = io.BytesIO()
    other.save(buf, format="PNG")
    different = await post_with_data(bam, buf.getvalue())
    assert different.status_code == 201


async def test_priority_follows_frequency_severity_and_function_weight(bam: httpx.AsyncClient) -> None:
    low = (await bam.post("/badcases", json=report(function="ocr", severity="low"))).json()
    crit = (await bam.post("/badcases", json=report(function="ocr", severity="critical",
                                                    ground_truth="other"))).json()
    weighted = (await bam.post("/badcases", json=report(severity="low"))).json()  # emotion weighs 2
    assert low["priority"] == 5.0 and crit["priority"] == 40.0 and weighted["priority"] == 10.0
    assert not low["priority_is_manual"]


async def test_manual_priority_overrides_and_clears(bam: httpx.AsyncClient) -> None:
    b = (await bam.post("/badcases", json=report())).json()
    r = await bam.patch(f"/badcases/{b['id']}", json={"priority": 99})
    assert r.json()["priority"] == 99 and r.json()["priority_is_manual"] and r.json()["priority_score"] == b["priority"]
    r = await bam.patch(f"/badcases/{b['id']}", json={"priority": None})
    assert r.json()["priority"] == b["priority"] and not r.json()["priority_is_manual"]


async def test_triage_flow_history_and_event(bam: httpx.AsyncClient, bam_db: str) -> None:
    b = (await bam.post("/badcases", json=report())).json()
    r = await bam.patch(f"/badcases/{b['id']}", json={"status": "triaged", "owner": "ana"})
    assert r.status_code == 200 and r.json()["status"] == "triaged" and r.json()["owner"] == "ana"
    r = await bam.patch(f"/badcases/{b['id']}", json={"status": "fixed"})
    assert r.json()["fixed_at"] is not None
    bad = await bam.patch(f"/badcases/{b['id']}", json={"status": "new"})
    assert bad.status_code == 409 and bad.json()["error"] == "InvalidTransition"
    assert "can become" in bad.json()["detail"]
    history = (await bam.get(f"/badcases/{b['id']}/history")).json()
    assert [(h["field"], h["old"], h["new"]) for h in history] == [
        ("status", "new", "triaged"), ("owner", None, "ana"), ("status", "triaged", "fixed")]
    assert (await outbox_subjects(bam_db)).count("badcase.updated") == 2


async def test_viewer_cannot_report_or_triage(bam: httpx.AsyncClient) -> None:
    r = await bam.post("/badcases", json=report(), headers=as_role("viewer"))
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    assert (await bam.get("/badcases", headers=as_role("viewer"))).status_code == 200


async def test_filters_search_and_sort(bam: httpx.AsyncClient) -> None:
    await bam.post("/badcases", json=report(description="half-wearing mask at night", tags=["mask"]))
    await bam.post("/badcases", json=report(ground_truth="angry", description="sunglasses glare",
                                            system_version="dms-2.4", severity="high"))
    await bam.post("/badcases", json=report(function="ocr", ground_truth="7", prediction="1",
                                            description="blurry digit"))
    assert len((await bam.get("/badcases", params={"function": "emotion"})).json()["items"]) == 2
    assert len((await bam.get("/badcases", params={"label": "angry"})).json()["items"]) == 1
    assert len((await bam.get("/badcases", params={"system_version": "dms-2.4"})).json()["items"]) == 1
    assert len((await bam.get("/badcases", params={"tag": "mask"})).json()["items"]) == 1
    hits = (await bam.get("/badcases", params={"q": "mask night"})).json()["items"]
    assert [h["description"] for h in hits] == ["half-wearing mask at night"]
    assert (await bam.get("/badcases", params={"q": "MASK"})).json()["items"]
    top = (await bam.get("/badcases", params={"sort": "-priority"})).json()["items"][0]
    assert top["severity"] == "high"


async def test_search_is_safe_with_sql_and_regex_metacharacters(bam: httpx.AsyncClient) -> None:
    await bam.post("/badcases", json=report(description="normal text"))
    for q in ["'; DROP TABLE badcase; --", ".*(", "\"unterminated", "a & | ! (b", "%_\\", "<script>alert(1)</script>"]:
        r = await bam.get("/badcases", params={"q": q})
        assert r.status_code == 200, (q, r.text)
    assert (await bam.get("/badcases")).json()["items"]


async def test_cursor_pagination_walks_every_badcase_once(bam: httpx.AsyncClient) -> None:
    for i in range(23):
        await bam.post("/badcases", json=report(ground_truth=f"label-{i}"))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, "sort": "-created_at"}
        if cursor:
            params["cursor"] = cursor
        page = (await bam.get("/badcases", params=params)).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 23 == len(set(seen))
    bad = await bam.get("/badcases", params={"cursor": "garbage!!"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidCursor"


async def test_the_filter_in_the_query_string_is_checked_and_documented_on_each_route(bam: httpx.AsyncClient) -> None:
    """The filter is read from the query string in one validation (not FastAPI's field-by-field spreading): a bad
    value is FastAPI's 422 naming the parameter, on the list, the stats and the weekly stats alike; parameters of
    the route itself and unknown ones are not the filter's; a repeated one counts with its last value; and the
    OpenAPI document still lists every filter parameter with its schema."""
    await bam.post("/badcases", json=report(function="ocr", severity="high"))
    await bam.post("/badcases", json=report(function="emotion", severity="low"))
    for path, extra in (("/badcases", {}), ("/stats", {"group_by": "function"}), ("/stats/weekly", {})):
        for bad in ({"status": "bogus"}, {"min_priority": "-1"}, {"task_id": "not-a-uuid"},
                    {"seen_after": "yesterday"}, {"function": "x" * 201}):
            r = await bam.get(path, params={**extra, **bad})
            assert r.status_code == 422, (path, bad, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [["query", *bad]], (bad, r.text)
        assert (await bam.get(path, params={**extra, "q": "a\x00b"})).status_code == 422  # the edge's own check
        assert (await bam.get(path, params={**extra, "severity": "high", "whatever": "1"})).status_code == 200
    listed = (await bam.get("/badcases", params=[("function", "emotion"), ("function", "ocr"),
                                                  ("sort", "-priority"), ("limit", "5")])).json()["items"]
    assert [b["function"] for b in listed] == ["ocr"]
    counts = (await bam.get("/stats", params={"group_by": "function", "severity": "low"})).json()
    assert [g["key"] for g in counts["groups"]] == [{"function": "emotion"}] and counts["total"] == 1, counts
    spec = (await bam.get(str(bam.base_url.copy_with(path="/openapi.json")))).json()
    wanted = set(BadcaseFilter.model_fields)
    for path, route_own in (("/badcases", {"sort", "cursor", "limit"}), ("/stats", {"group_by", "limit"}),
                            ("/stats/weekly", {"weeks"})):
        parameters = {p["name"]: p for p in spec["paths"][f"/api/bam{path}"]["get"]["parameters"]}
        assert set(parameters) == wanted | route_own, path
        assert parameters["status"]["in"] == "query" and "bogus" not in str(parameters["status"]["schema"])
        assert "new" in str(parameters["status"]["schema"]) and parameters["task_id"]["schema"]


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(bam: httpx.AsyncClient, bam_db: str) -> None:
    cases = [
        report(unknown_field=1),
        report(description="x" * 10_001),
        report(data=[{"kind": "md5", "value": "not-an-md5"}]),
        report(data=[{"kind": "key", "value": "../../etc/passwd"}]),
        report(data=[{"kind": "url", "value": "file:///etc/passwd"}]),
        report(function=""),
        report(description="nul\x00byte"),
        report(tags=["<script>"]),
        report(prediction={"blob": "x" * 70_000}),
        report(model_name="nul\x00name"),
        report(prediction="a\x00b"),
    ]
    for body in cases:
        r = await bam.post("/badcases", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["error"] == "RequestValidationError"
    r = await bam.post("/badcases", content=b"\xff\xfe not json", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"] in ("BadRequest", "RequestValidationError")
    lone = json.dumps(report(prediction="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800").encode()
    r = await bam.post("/badcases", content=lone, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    nan = json.dumps(report(ground_truth="NAN_HERE")).replace('"NAN_HERE"', "NaN").encode()
    r = await bam.post("/badcases", content=nan, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    r = await bam.post("/badcases/with-data", data={"report": "{not json"}, files={"file": ("a", b"x")})
    assert r.status_code == 422 and r.json()["error"] == "InvalidReport"
    assert (await bam.get(f"/badcases/{uuid.uuid4()}")).status_code == 404
    assert (await bam.get("/badcases")).json()["items"] == []
    assert await outbox_subjects(bam_db) == []


async def test_html_in_text_is_stored_as_inert_text(bam: httpx.AsyncClient) -> None:
    r = await bam.post("/badcases", json=report(description="<img src=x onerror=alert(1)>"))
    assert r.status_code == 201
    got = await bam.get(f"/badcases/{r.json()['id']}")
    assert got.headers["content-type"] == "application/json"
    assert got.json()["description"] == "<img src=x onerror=alert(1)>"


async def test_periodic_rescore_decays_with_recency_and_follows_new_weights(bam: httpx.AsyncClient, bam_db: str) -> None:
    from datetime import timedelta

    from bam.badcase.service import BadcaseService
    from mlife_shared.db import Database, utcnow
    from mlife_shared.jobs import Job, run_job

    plain = (await bam.post("/badcases", json=report(function="ocr"))).json()
    manual = (await bam.post("/badcases", json=report(function="ocr", ground_truth="other"))).json()
    await bam.patch(f"/badcases/{manual['id']}", json={"priority": 77})
    settings = bam.app.state.settings  # type: ignore[attr-defined]
    db = Database(bam_db)
    try:
        async with db.transaction() as session:  # nothing moved: nothing written
            assert await BadcaseService(session, settings).rescore_all() == 0
        later = utcnow() + timedelta(days=14)  # one half-life
        async with db.transaction() as session:
            assert await BadcaseService(session, settings).rescore_all(now=later) == 2
        got = (await bam.get(f"/badcases/{plain['id']}")).json()
        assert got["priority"] == plain["priority"] / 2 and got["priority_score"] == plain["priority"] / 2
        kept = (await bam.get(f"/badcases/{manual['id']}")).json()
        assert kept["priority"] == 77 and kept["priority_is_manual"] and kept["priority_score"] == plain["priority"] / 2
        # The worker's job with a new weight for the function (as after a configuration change).
        reweighted = settings.model_copy(update={"function_weights": {"ocr": 3.0}})
        job = Job("priority-rescore", 3600, lambda s: BadcaseService(s, reweighted).rescore_all())
        assert await run_job(db, job) == 2
        got = (await bam.get(f"/badcases/{plain['id']}")).json()
        assert got["priority"] == plain["priority"] * 3
        listed = (await bam.get("/badcases", params={"function": "ocr", "sort": "-priority"})).json()["items"]
        assert [b["id"] for b in listed] == [manual["id"], plain["id"]]
    finally:
        await db.dispose()


async def test_a_report_that_is_not_a_json_object_is_a_422_even_when_it_is_not_finite(bam: httpx.AsyncClient) -> None:
    for text in ("-Infinity", "NaN", "[1, 2]", "{"):
        r = await bam.post("/badcases/with-data", data={"report": text},
                           files={"file": ("frame.png", b"x", "application/octet-stream")})
        assert r.status_code == 422, (text, r.text)
        assert r.json()["error"] == "InvalidReport"


async def test_a_tabular_badcase_keeps_its_feature_row_and_rows_tell_badcases_apart(bam: httpx.AsyncClient,
                                                                                   bam_db: str) -> None:
    row = {"alcohol": 13.2, "malic_acid": 1.78, "colour": "red", "organic": True, "note": None}
    task, version = uuid.uuid4(), uuid.uuid4()
    body = report(function="wine-quality", data=[], features=row, prediction="5", ground_truth="7",
                  task_id=str(task), model_version_id=str(version))
    r = await bam.post("/badcases", json=body)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["features"] == row and b["task_id"] == str(task) and b["model_version_id"] == str(version)
    assert b["deployment_id"] is None and b["data"] == []
    assert (await bam.get(f"/badcases/{b['id']}")).json()["features"] == row
    # The same row (keys in another order) is the same badcase; another row is another one.
    again = await bam.post("/badcases", json={**body, "features": dict(reversed(list(row.items())))})
    assert again.status_code == 200 and again.json()["merged_into"] == b["id"]
    other = await bam.post("/badcases", json={**body, "features": {**row, "alcohol": 12.0}})
    assert other.status_code == 201
    assert [x["id"] for x in (await bam.get("/badcases", params={"task_id": str(task),
                                                                  "sort": "created_at"})).json()["items"]] == [
        b["id"], other.json()["id"]]
    created = (await created_events(bam_db))[0]
    assert created["task_id"] == str(task) and created["model_version_id"] == str(version)


async def test_features_must_be_a_non_empty_object_of_plain_values(bam: httpx.AsyncClient) -> None:
    for features in ({}, {"a": [1, 2]}, {"a": {"b": 1}}, [1, 2], "x", {"": 1}):
        r = await bam.post("/badcases", json=report(features=features))
        assert r.status_code == 422, features
        assert "features" in r.text
    r = await bam.post("/badcases", json=report(task_id="not-a-uuid"))
    assert r.status_code == 422 and "task_id" in r.text


async def created_events(db_url: str) -> list[dict[str, Any]]:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT envelope FROM outbox WHERE subject = 'badcase.created' "
                                           "ORDER BY seq"))).scalars().all()
    await engine.dispose()
    return [(r if isinstance(r, dict) else json.loads(r))["data"] for r in rows]


async def test_a_list_page_shows_each_badcase_as_reading_it_alone_does(bam: httpx.AsyncClient) -> None:
    """The list builds its page from the rows in one validation (bam.badcase.router.page_answer), one badcase at a
    time reads the ORM object (to_read): every field of every kind of badcase must come out the same."""
    from tests.support.bam import png, report

    made = [
        (await bam.post("/badcases", json=report())).json(),  # a DAM file by MD5
        (await bam.post("/badcases", json=report(function="wine", data=[], features={"alcohol": 9.5, "ph": 3.1},
                                                 prediction="5", ground_truth="7"))).json(),  # a tabular row
        (await bam.post("/badcases", json=report(data=[{"kind": "key", "value": "served-inputs/d/x.png"}],
                                                 tags=["night", "rain"], severity="critical"))).json(),
        (await bam.post("/badcases/with-data", data={"report": json.dumps(report(data=[]))},
                        files={"file": ("a.png", png(), "image/png")})).json(),  # data BAM holds
        (await bam.post("/badcases", json=report(data=[{"kind": "url", "value": "https://example.com/clip.wav",
                                                        "media_type": "audio"}],
                                                 segment_start=1.5, segment_end=2.0))).json(),
    ]
    assert all("id" in m for m in made), made
    triaged = await bam.patch(f"/badcases/{made[0]['id']}", json={"priority": 42, "owner": "olga"})
    sent = await bam.post("/badcases/add-to-test-data", json={"ids": [made[1]["id"]]})
    assert triaged.status_code == 200 and sent.status_code == 200, (triaged.text, sent.text)
    listed = {b["id"]: b for b in (await bam.get("/badcases", params={"limit": 50})).json()["items"]}
    assert set(listed) == {m["id"] for m in made}
    for m in made:
        alone = (await bam.get(f"/badcases/{m['id']}")).json()
        assert listed[m["id"]] == alone
    assert {(b["preview"] or {}).get("source") for b in listed.values()} == {"bam", "dam", None}
    assert listed[made[4]["id"]]["segment_start"] == 1.5 and listed[made[2]["id"]]["tags"] == ["night", "rain"]
    assert listed[made[0]["id"]]["priority_is_manual"] and listed[made[1]["id"]]["added_to_test_data_at"]
