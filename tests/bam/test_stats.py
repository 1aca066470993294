"""Statistics: groups, confusion tables and the weekly burn-down, on real PostgreSQL and on SQLite."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bam.app import SPEC
from bam.badcase.models import Badcase, Occurrence
from bam.config import Settings
from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER
from mlife_shared.db import make_engine
from mlife_shared.migrations import upgrade
from tests.support.auth import SECRET, as_role

_md5s = count(1)


def report(**kw: Any) -> dict[str, Any]:
    """A report with its own data, so that every call is a new badcase."""
    body = {"function": "emotion", "data": [{"kind": "md5", "value": f"{next(_md5s):032x}"}],
            "prediction": "happy", "ground_truth": "sad", "system_version": "dms-2.3"}
    body.update(kw)
    return body


async def new(bam: httpx.AsyncClient, **kw: Any) -> str:
    r = await bam.post("/badcases", json=report(**kw))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def set_status(bam: httpx.AsyncClient, badcase_id: str, *statuses: str) -> None:
    for status in statuses:
        r = await bam.patch(f"/badcases/{badcase_id}", json={"status": status})
        assert r.status_code == 200, r.text


async def backdate(db_url: str, badcase_id: str, **weeks: int) -> None:
    """Move the badcase's timestamps (`first_seen=2`: two weeks) back; its reports move with `first_seen`."""
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        bid = uuid.UUID(badcase_id)
        row = (await conn.execute(sa.select(*(getattr(Badcase, c) for c in weeks)).where(Badcase.id == bid))).one()
        await conn.execute(sa.update(Badcase).where(Badcase.id == bid).values(
            {c: value - timedelta(weeks=w) for (c, w), value in zip(weeks.items(), row, strict=True)}))
        for oid, reported_at in (await conn.execute(sa.select(Occurrence.id, Occurrence.reported_at)
                                                    .where(Occurrence.badcase_id == bid))).all():
            await conn.execute(sa.update(Occurrence).where(Occurrence.id == oid)
                               .values(reported_at=reported_at - timedelta(weeks=weeks.get("first_seen", 0))))
    await engine.dispose()


async def test_group_by_one_attribute_counts_and_shares(bam: httpx.AsyncClient) -> None:
    for function in ["emotion", "emotion", "emotion", "ocr", "ocr", "gaze"]:
        await new(bam, function=function)
    r = await bam.get("/stats", params={"group_by": "function"})
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["total"] == 6 and stats["group_by"] == ["function"] and stats["matrix"] is None
    assert [(g["key"], g["count"]) for g in stats["groups"]] == [
        ({"function": "emotion"}, 3), ({"function": "ocr"}, 2), ({"function": "gaze"}, 1)]
    assert sum(g["share"] for g in stats["groups"]) == pytest.approx(1.0)
    assert stats["other"] == 0 and stats["other_groups"] == 0

    top = (await bam.get("/stats", params={"group_by": "function", "limit": 1})).json()
    assert [g["count"] for g in top["groups"]] == [3] and top["groups"][0]["share"] == pytest.approx(0.5)
    assert top["other"] == 3 and top["other_groups"] == 2


async def test_nulls_tags_and_weeks_are_groups_too(bam: httpx.AsyncClient) -> None:
    await new(bam, tags=["mask", "night"])
    await new(bam, tags=["mask"])
    await new(bam, model_name="expr")
    by_model = (await bam.get("/stats", params={"group_by": "model_name"})).json()
    assert [(g["key"]["model_name"], g["count"]) for g in by_model["groups"]] == [(None, 2), ("expr", 1)]
    by_tag = (await bam.get("/stats", params={"group_by": "tag"})).json()
    assert by_tag["total"] == 3  # badcases, not tags: a badcase counts once per tag
    assert [(g["key"]["tag"], g["count"]) for g in by_tag["groups"]] == [("mask", 2), ("night", 1), (None, 1)]
    by_week = (await bam.get("/stats", params={"group_by": "week"})).json()
    assert len(by_week["groups"]) == 1 and by_week["groups"][0]["count"] == 3
    monday = date.fromisoformat(by_week["groups"][0]["key"]["week"])
    assert monday.weekday() == 0 and date.today() - monday <= timedelta(days=7)


async def test_group_by_a_pair_is_a_confusion_table(bam: httpx.AsyncClient) -> None:
    for truth, predicted, times in [("sad", "happy", 3), ("angry", "neutral", 2), ("sad", "neutral", 1)]:
        for _ in range(times):
            await new(bam, ground_truth=truth, prediction=predicted)
    stats = (await bam.get("/stats", params={"group_by": "label,prediction"})).json()
    assert stats["group_by"] == ["label", "prediction"]
    assert [(g["key"], g["count"]) for g in stats["groups"]] == [
        ({"label": "sad", "prediction": "happy"}, 3), ({"label": "angry", "prediction": "neutral"}, 2),
        ({"label": "sad", "prediction": "neutral"}, 1)]
    assert stats["matrix"] == {"rows": ["sad", "angry"], "columns": ["happy", "neutral"],
                               "counts": [[3, 1], [0, 2]]}

    # A cell cut by `limit` is still counted in the table of the rows and columns shown.
    top = (await bam.get("/stats", params={"group_by": "label,prediction", "limit": 2})).json()
    assert len(top["groups"]) == 2 and top["other"] == 1 and top["other_groups"] == 1
    assert top["matrix"]["counts"] == [[3, 1], [0, 2]]
    by_week = (await bam.get("/stats", params={"group_by": "week,label", "limit": 1})).json()
    assert by_week["matrix"]["columns"] == ["sad"] and by_week["matrix"]["counts"] == [[4]]


async def test_the_badcase_list_filters_apply(bam: httpx.AsyncClient) -> None:
    await new(bam, function="emotion", system_version="dms-2.4", tags=["night"], description="glare at night")
    await new(bam, function="ocr", system_version="dms-2.4")
    await new(bam, function="ocr", system_version="dms-2.3", severity="high")
    fixed = await new(bam, function="gaze", system_version="dms-2.4")
    await set_status(bam, fixed, "fixed")

    async def counts(**params: Any) -> dict[str | None, int]:
        r = await bam.get("/stats", params={"group_by": "function", **params})
        assert r.status_code == 200, r.text
        return {g["key"]["function"]: g["count"] for g in r.json()["groups"]}

    assert await counts(system_version="dms-2.4") == {"emotion": 1, "ocr": 1, "gaze": 1}
    assert await counts(status="fixed") == {"gaze": 1}
    assert await counts(severity="high") == {"ocr": 1}
    assert await counts(tag="night") == {"emotion": 1}
    assert await counts(q="glare") == {"emotion": 1}
    assert await counts(function="nothing-like-this") == {}
    empty = (await bam.get("/stats", params={"group_by": "function", "function": "nothing"})).json()
    assert empty["total"] == 0 and empty["groups"] == []


async def test_bad_group_by_is_422_and_says_what_is_allowed(bam: httpx.AsyncClient) -> None:
    r = await bam.get("/stats", params={"group_by": "reporter"})
    assert r.status_code == 422 and r.json()["error"] == "InvalidGroupBy"
    assert "'reporter'" in r.json()["detail"] and "function" in r.json()["detail"] and "week" in r.json()["detail"]
    for bad in ["function,status,owner", "status,status", "function,"]:
        r = await bam.get("/stats", params={"group_by": bad})
        assert r.status_code == 422 and set(r.json()) == {"error", "detail"}, (bad, r.text)
    r = await bam.get("/stats")
    assert r.status_code == 422 and r.json()["error"] == "RequestValidationError"
    r = await bam.get("/stats", params={"group_by": "function", "limit": 501})
    assert r.status_code == 422 and r.json()["error"] == "RequestValidationError"
    r = await bam.get("/stats/weekly", params={"weeks": 105})
    assert r.status_code == 422 and r.json()["error"] == "RequestValidationError"


async def test_weekly_series_counts_reported_fixed_regressed_and_open(bam: httpx.AsyncClient, bam_db: str) -> None:
    old = await new(bam)
    await backdate(bam_db, old, first_seen=2)
    old_fixed = await new(bam)
    await set_status(bam, old_fixed, "fixed")
    await backdate(bam_db, old_fixed, first_seen=2, fixed_at=1, updated_at=1)
    fixed, regressed, wont_fix, still_open = [await new(bam) for _ in range(4)]
    await new(bam, function="ocr")
    assert (await bam.post("/badcases", json=report(data=[]))).status_code == 201
    assert (await bam.post("/badcases", json=report(data=[]))).status_code == 200  # a repeat: one more report
    await set_status(bam, fixed, "fixed")
    await set_status(bam, regressed, "fixed", "regressed")
    await set_status(bam, wont_fix, "wont_fix")
    assert still_open

    r = await bam.get("/stats/weekly", params={"weeks": 4, "function": "emotion"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["weeks"] == 4
    weeks = [date.fromisoformat(p["week"]) for p in body["series"]]
    assert all(w.weekday() == 0 for w in weeks)
    assert [b - a for a, b in pairwise(weeks)] == [timedelta(weeks=1)] * 3
    rows = [(p["reported"], p["occurrences"], p["fixed"], p["regressed"], p["open"]) for p in body["series"]]
    assert rows == [
        # reported, occurrences, fixed, regressed, open at the end of the week
        (0, 0, 0, 0, 0),  # nothing yet: the week is still there
        (2, 2, 0, 0, 2),  # the two old badcases
        (0, 0, 1, 0, 1),  # one of them fixed
        (5, 6, 2, 1, 4),  # 5 new (+1 repeat); both fixed and regressed were fixed this week; 2 closed
    ]
    everything = (await bam.get("/stats/weekly", params={"weeks": 1})).json()["series"]
    assert [(p["reported"], p["open"]) for p in everything] == [(6, 5)]
    default = (await bam.get("/stats/weekly")).json()
    assert default["weeks"] == 12 and len(default["series"]) == 12
    assert default["series"][-1] == body["series"][-1] | {"reported": 6, "occurrences": 7, "open": 5}


async def test_viewer_may_read_stats_and_anonymous_may_not(bam: httpx.AsyncClient) -> None:
    await new(bam)
    for path in ["/stats?group_by=function", "/stats/weekly"]:
        assert (await bam.get(path, headers=as_role("viewer"))).status_code == 200
        r = await bam.get(path, headers={IDENTITY_HEADER: ""})
        assert r.status_code == 401 and r.json()["error"] == "Unauthorized"


@pytest.fixture
async def bam_sqlite(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """BAM on a migrated SQLite file: the embedded default."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bam.db'}"
    upgrade("bam.migrations", url)
    settings = Settings(environment="test", database_url=url, nats_url=nats_url, identity_secret=SecretStr(SECRET),
                        home=tmp_path, object_store_path=tmp_path / "objects")
    app = create_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://bam/api/bam",
                                     headers=as_role("tester", "tess")) as client:
            yield client, url


async def test_stats_on_sqlite(bam_sqlite: tuple[httpx.AsyncClient, str]) -> None:
    bam, url = bam_sqlite
    old = await new(bam, function="ocr", ground_truth="7", prediction="1")
    await backdate(url, old, first_seen=1)
    dropped = await new(bam, function="gaze")
    await set_status(bam, dropped, "wont_fix")
    await backdate(url, dropped, first_seen=2, updated_at=1)
    await new(bam)
    await new(bam, tags=["night"])
    await set_status(bam, await new(bam), "fixed", "regressed")
    await set_status(bam, await new(bam, function="ocr", ground_truth="7", prediction="1"), "fixed")

    stats = (await bam.get("/stats", params={"group_by": "function"})).json()
    assert stats["total"] == 6
    assert [(g["key"]["function"], g["count"]) for g in stats["groups"]] == [("emotion", 3), ("ocr", 2), ("gaze", 1)]
    assert sum(g["share"] for g in stats["groups"]) == pytest.approx(1.0)
    table = (await bam.get("/stats", params={"group_by": "label,prediction"})).json()["matrix"]
    assert table == {"rows": ["sad", "7"], "columns": ["happy", "1"], "counts": [[4, 0], [0, 2]]}
    by_week = (await bam.get("/stats", params={"group_by": "week"})).json()["groups"]
    assert [g["count"] for g in by_week] == [4, 1, 1]
    weeks = [g["key"]["week"] for g in by_week]
    assert all(date.fromisoformat(w).weekday() == 0 for w in weeks) and weeks[1] < weeks[2] < weeks[0]
    limited = (await bam.get("/stats", params={"group_by": "week,function", "limit": 1})).json()
    assert limited["matrix"] == {"rows": [weeks[0]], "columns": ["emotion"], "counts": [[3]]}
    assert (await bam.get("/stats", params={"group_by": "tag"})).json()["groups"][0]["key"] == {"tag": None}

    series = (await bam.get("/stats/weekly", params={"weeks": 3})).json()["series"]
    assert [p["week"] for p in series] == [weeks[1], weeks[2], weeks[0]]
    assert [(p["reported"], p["occurrences"], p["fixed"], p["regressed"], p["open"]) for p in series] == [
        (1, 1, 0, 0, 1), (1, 1, 0, 0, 1), (4, 4, 2, 1, 4)]


async def test_import_and_list_on_sqlite(bam_sqlite: tuple[httpx.AsyncClient, str]) -> None:
    """The embedded default takes the import's executemany path (PostgreSQL COPYs) and lists with the same answer."""
    bam, _ = bam_sqlite
    rows = [report(description="Wet tunnel", tags=["night"]), report(function="ocr", ground_truth="7")]
    rows.append({**rows[0], "tags": ["rain"]})  # the same badcase again: merged, its tag added
    body = "".join(json.dumps(r) + "\n" for r in rows)
    r = await bam.post("/badcases/import", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["merged"], r.json()["failed"]) == (2, 1, 0)
    page = (await bam.get("/badcases", params={"q": "tunnel"})).json()
    assert [(b["frequency"], b["tags"], b["description"], b["prediction"], b["ground_truth"]) for b in page["items"]] == [
        (2, ["night", "rain"], "Wet tunnel", "happy", "sad")]
    assert page["next_cursor"] is None and page["items"][0]["source"] == "import"
    first = (await bam.get("/badcases", params={"limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = (await bam.get("/badcases", params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert rest["items"][0]["id"] != first["items"][0]["id"]
