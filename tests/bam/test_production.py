"""Badcase status follows each function's production version, on real NATS JetStream, PostgreSQL and the object
store: candidates record outcomes and move nothing; a promotion, and a production version's later results, set
`fixed` / `regressed`; nothing of one function touches another's badcases."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from bam.badcase.schemas import BadcaseCreate
from bam.badcase.service import BadcaseService, ReportContext
from bam.config import Settings
from bam.outcome.service import OutcomeService
from bam.production.service import ProductionService
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import ModelPromoted, TestingCompleted
from mlife_shared.migrations import upgrade
from mlife_shared.objectstore import LocalObjectStore
from mlife_shared.objectstore.base import iterate
from tests.support.auth import SECRET
from tests.support.bam import outcomes_recorded, report, run_consumers, write_outcomes
from tests.support.nats import publish
from tests.support.outbox import outbox_events


async def status(bam: httpx.AsyncClient, badcase: dict) -> str:
    return (await bam.get(f"/badcases/{badcase['id']}")).json()["status"]


async def results(bam: httpx.AsyncClient, bus: JetStreamContext, function: str | None, version: str,
                  outcomes: dict[str, bool], *, model: str = "expr", version_id: uuid.UUID | None = None) -> uuid.UUID:
    """Publish a testing.completed of `model` `version` with a pass (True) or fail per badcase id."""
    key = await write_outcomes(bam, [{"badcase_id": i, "correct": ok, "prediction": "x"} for i, ok in outcomes.items()])
    task = uuid.uuid4()
    await publish(bus, TestingCompleted(task_id=task, model_name=model, model_version=version, function=function,
                                        model_version_id=version_id, set_kind="badcase_test_set", outcomes_key=key))
    return task


async def promoted(bus: JetStreamContext, function: str | None, version: str, *, model: str = "expr",
                   version_id: uuid.UUID | None = None, age: timedelta = timedelta(0)) -> None:
    env = new_envelope(ModelPromoted(model_version_id=version_id or uuid.uuid4(), model_name=model,
                                     model_version=version, function=function))
    env.time -= age
    await bus.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})


def production_is(bam: httpx.AsyncClient, function: str, version: str) -> Callable[[], Awaitable[bool]]:
    async def _check() -> bool:
        rows = (await bam.get("/production")).json()
        return any(p["function"] == function and p["model_version"] == version for p in rows)
    return _check


async def test_a_candidates_results_change_no_status(bam: httpx.AsyncClient, bam_db: str,
                                                    bus: JetStreamContext) -> None:
    open_ = (await bam.post("/badcases", json=report())).json()
    fixed = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    assert (await bam.patch(f"/badcases/{fixed['id']}", json={"status": "fixed"})).status_code == 200
    await promoted(bus, "emotion", "1.0")
    await run_consumers(bam, bam_db, bus, production_is(bam, "emotion", "1.0"))

    await results(bam, bus, "emotion", "2.0", {open_["id"]: True, fixed["id"]: False})
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, fixed["id"], 1))
    assert await status(bam, open_) == "new" and await status(bam, fixed) == "fixed"
    outcomes = (await bam.get(f"/badcases/{open_['id']}/outcomes")).json()["by_model_version"]
    assert [(o["model_version"], o["passed"], o["production"]) for o in outcomes] == [("2.0", True, False)]


async def test_a_promotion_sets_fixed_and_regressed_from_the_new_productions_outcomes(
        bam: httpx.AsyncClient, bam_db: str, bus: JetStreamContext) -> None:
    passes = (await bam.post("/badcases", json=report())).json()
    fails = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    untested = (await bam.post("/badcases", json=report(ground_truth="calm"))).json()
    wont = (await bam.post("/badcases", json=report(ground_truth="bored"))).json()
    for b, s in ((fails, "fixed"), (untested, "fixed"), (wont, "wont_fix")):
        assert (await bam.patch(f"/badcases/{b['id']}", json={"status": s})).status_code == 200
    v2 = uuid.uuid4()
    # Tested twice: the latest outcome counts (an earlier pass of `fails` does not).
    await results(bam, bus, "emotion", "2.0", {passes["id"]: False, fails["id"]: True}, version_id=v2)
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, fails["id"], 1))
    task = await results(bam, bus, "emotion", "2.0", {passes["id"]: True, fails["id"]: False, wont["id"]: True},
                        version_id=v2)
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, fails["id"], 2))
    assert await status(bam, passes) == "new" and await status(bam, fails) == "fixed"

    await promoted(bus, "emotion", "2.0", version_id=v2)
    await run_consumers(bam, bam_db, bus, production_is(bam, "emotion", "2.0"))
    assert await status(bam, passes) == "fixed" and await status(bam, fails) == "regressed"
    assert await status(bam, untested) == "fixed" and await status(bam, wont) == "wont_fix"
    history = (await bam.get(f"/badcases/{fails['id']}/history")).json()
    assert [(h["actor"], h["old"], h["new"]) for h in history][-1] == ("production:expr 2.0", "fixed", "regressed")
    # The PATCHes above sent badcase.updated too, caused by nothing; the promotion's are caused by it.
    updated = [e for e in await outbox_events(bam_db, "badcase.updated") if e["causation_id"] is not None]
    assert sorted((e["data"]["badcase_id"], e["data"]["changes"]) for e in updated) == sorted(
        [(passes["id"], {"status": "fixed"}), (fails["id"], {"status": "regressed"})])
    outcomes = (await bam.get(f"/badcases/{passes['id']}/outcomes")).json()
    assert outcomes["by_model_version"][0]["production"] is True and str(task) in {
        h["task_id"] for h in outcomes["history"]}
    production = (await bam.get("/production")).json()
    assert [(p["function"], p["model_name"], p["model_version"], p["model_version_id"]) for p in production] == [
        ("emotion", "expr", "2.0", str(v2))]


async def test_a_production_versions_later_results_move_statuses(bam: httpx.AsyncClient, bam_db: str,
                                                                 bus: JetStreamContext) -> None:
    a = (await bam.post("/badcases", json=report())).json()
    v3 = uuid.uuid4()
    await promoted(bus, "emotion", "3.0", version_id=v3)
    await run_consumers(bam, bam_db, bus, production_is(bam, "emotion", "3.0"))
    assert await status(bam, a) == "new"

    task = await results(bam, bus, "emotion", "3.0", {a["id"]: True}, version_id=v3)
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 1))
    assert await status(bam, a) == "fixed"
    # Matched by name and version when the result does not carry MSM's id.
    await results(bam, bus, "emotion", "3.0", {a["id"]: False})
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 2))
    assert await status(bam, a) == "regressed"
    history = (await bam.get(f"/badcases/{a['id']}/history")).json()
    assert [h["new"] for h in history] == ["fixed", "regressed"] and history[0]["actor"] == f"testing:{task}"


async def test_a_status_a_testing_result_sets_is_recorded_as_a_manual_triage_of_it_is(
        bam: httpx.AsyncClient, bam_db: str, bus: JetStreamContext) -> None:
    """One code path for a status change: the production version's result writes the history row and the
    `badcase.updated` a tester's PATCH writes, only the actor (and the event's cause) differ."""
    by_hand = (await bam.post("/badcases", json=report())).json()
    by_result = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    version = uuid.uuid4()
    await promoted(bus, "emotion", "4.0", version_id=version)
    await run_consumers(bam, bam_db, bus, production_is(bam, "emotion", "4.0"))

    assert (await bam.patch(f"/badcases/{by_hand['id']}", json={"status": "fixed"})).status_code == 200
    task = await results(bam, bus, "emotion", "4.0", {by_result["id"]: True}, version_id=version)
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, by_result["id"], 1))

    def rows(history: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(h["field"], h["old"], h["new"]) for h in history]

    manual = (await bam.get(f"/badcases/{by_hand['id']}/history")).json()
    decided = (await bam.get(f"/badcases/{by_result['id']}/history")).json()
    assert rows(manual) == rows(decided) == [("status", "new", "fixed")]
    assert (manual[0]["actor"], decided[0]["actor"]) == ("tess", f"testing:{task}")
    for b in (by_hand, by_result):
        read = (await bam.get(f"/badcases/{b['id']}")).json()
        assert read["status"] == "fixed" and read["fixed_at"] is not None
    updated = {e["data"]["badcase_id"]: e for e in await outbox_events(bam_db, "badcase.updated")}
    assert updated[by_hand["id"]]["data"]["changes"] == updated[by_result["id"]]["data"]["changes"] == {
        "status": "fixed"}
    assert updated[by_hand["id"]]["causation_id"] is None and updated[by_result["id"]]["causation_id"] is not None


async def test_one_functions_results_and_promotions_never_touch_another_functions_badcases(
        bam: httpx.AsyncClient, bam_db: str, bus: JetStreamContext) -> None:
    a = (await bam.post("/badcases", json=report(function="digits"))).json()
    b_open = (await bam.post("/badcases", json=report(function="shapes"))).json()
    b_fixed = (await bam.post("/badcases", json=report(function="shapes", ground_truth="angry"))).json()
    assert (await bam.patch(f"/badcases/{b_fixed['id']}", json={"status": "fixed"})).status_code == 200
    # Both functions' production is "net 1" (one registry name serving both is the worst case for scoping).
    await promoted(bus, "digits", "1", model="net")
    await promoted(bus, "shapes", "1", model="net")

    async def _both() -> bool:
        return {p["function"] for p in (await bam.get("/production")).json()} == {"digits", "shapes"}

    await run_consumers(bam, bam_db, bus, _both)
    await results(bam, bus, "digits", "1", {a["id"]: True, b_open["id"]: True, b_fixed["id"]: False}, model="net")
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 1))
    assert await status(bam, a) == "fixed"
    assert await status(bam, b_open) == "new" and await status(bam, b_fixed) == "fixed"
    for b in (b_open, b_fixed):
        assert (await bam.get(f"/badcases/{b['id']}/outcomes")).json()["history"] == [], "foreign lines are ignored"

    # A later promotion of shapes judges shapes' badcases by shapes' outcomes only: there are none.
    await promoted(bus, "shapes", "2", model="net")
    await run_consumers(bam, bam_db, bus, production_is(bam, "shapes", "2"))
    assert await status(bam, b_open) == "new" and await status(bam, b_fixed) == "fixed"
    assert await status(bam, a) == "fixed"
    by_function = (await bam.get("/stats", params={"group_by": "function,status"})).json()
    assert {(g["key"]["function"], g["key"]["status"]): g["count"] for g in by_function["groups"]} == {
        ("digits", "fixed"): 1, ("shapes", "new"): 1, ("shapes", "fixed"): 1}


async def test_an_older_promotion_delivered_late_does_not_move_production_back(
        bam: httpx.AsyncClient, bam_db: str, bus: JetStreamContext) -> None:
    a = (await bam.post("/badcases", json=report())).json()
    await results(bam, bus, "emotion", "1.0", {a["id"]: True})
    await promoted(bus, "emotion", "2.0")

    async def both() -> bool:  # two consumers: wait for the outcome as well as the promotion
        history = (await bam.get(f"/badcases/{a['id']}/outcomes")).json()["history"]
        return bool(history) and await production_is(bam, "emotion", "2.0")()

    await run_consumers(bam, bam_db, bus, both)
    await promoted(bus, "emotion", "1.0", age=timedelta(minutes=5))
    await promoted(bus, None, "7")  # no function: nothing is production for it
    await promoted(bus, "marker", "1")  # handled after the two above (one consumer, in order)
    await run_consumers(bam, bam_db, bus, production_is(bam, "marker", "1"))
    assert [(p["function"], p["model_version"]) for p in (await bam.get("/production")).json()] == [
        ("emotion", "2.0"), ("marker", "1")]
    assert len((await bam.get(f"/badcases/{a['id']}/outcomes")).json()["history"]) == 1
    assert await status(bam, a) == "new", "1.0 passes it, but 1.0 is not production"


async def test_promotions_of_one_function_handled_together_keep_the_latest(bam: httpx.AsyncClient, bam_db: str,
                                                                           bus: JetStreamContext) -> None:
    a = (await bam.post("/badcases", json=report())).json()
    await results(bam, bus, "emotion", "1.0", {a["id"]: True})
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 1))
    # Published before the consumer runs, so they are fetched (and applied) as one batch, in order.
    await promoted(bus, "emotion", "2.0")
    await promoted(bus, "emotion", "1.0", age=timedelta(minutes=5))
    await promoted(bus, "marker", "1")
    await run_consumers(bam, bam_db, bus, production_is(bam, "marker", "1"))
    assert [(p["function"], p["model_version"]) for p in (await bam.get("/production")).json()] == [
        ("emotion", "2.0"), ("marker", "1")]
    assert await status(bam, a) == "new"


@pytest.fixture(params=["postgresql", "sqlite"])
async def any_db(request: pytest.FixtureRequest, make_database: Callable[[str], Awaitable[str]],
                 tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'bam.db'}"
        upgrade("bam.migrations", url)
        return url
    return await make_database("bam.migrations")


async def test_two_replicas_a_promotion_waits_for_its_versions_results_and_neither_misses_the_other(
        any_db: str, tmp_path: Path) -> None:
    """Replica 1 applies v2's results (v2 not yet production: nothing moves) and has not committed; replica 2 handles
    v2's promotion meanwhile. The promotion must wait and then see those outcomes, or `a` would stay `new` although
    production passes it. Called through the services, two transactions at once, on PostgreSQL and SQLite."""
    settings = Settings(environment="test", database_url=any_db, nats_url="nats://127.0.0.1:4222",
                        identity_secret=SecretStr(SECRET), home=tmp_path, object_store_path=tmp_path / "objects")
    store = LocalObjectStore(tmp_path / "objects")
    db1, db2 = Database(any_db), Database(any_db)
    try:
        async with db1.transaction() as s:
            recorded = await BadcaseService(s, settings).record(BadcaseCreate(**report(function="digits")),
                                                                ReportContext(reporter="t", source="manual"))
        a_id = recorded.badcase.id
        key = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
        await store.put(key, iterate(json.dumps({"badcase_id": str(a_id), "correct": True}).encode() + b"\n"))
        v2 = uuid.uuid4()
        result = new_envelope(TestingCompleted(task_id=uuid.uuid4(), model_name="net", model_version="2",
                                               model_version_id=v2, function="digits", outcomes_key=key))
        promotion = new_envelope(ModelPromoted(model_version_id=v2, model_name="net", model_version="2",
                                               function="digits"))

        v1 = new_envelope(ModelPromoted(model_version_id=uuid.uuid4(), model_name="net", model_version="1",
                                        function="digits"))
        v1.time -= timedelta(minutes=1)
        async with db2.transaction() as s2:  # v1 is production: the function's row exists (and is committed)
            await ProductionService(s2, settings).promote(v1)

        async def promote_on_replica_2() -> None:
            async with db2.transaction() as s2:
                await ProductionService(s2, settings).promote(promotion)

        async with db1.transaction() as s1:
            counts = await OutcomeService(s1, settings).apply_testing_completed(store, result)
            assert counts["passed"] == 1 and not counts["fixed"], "v2 is not production yet"
            replica_2 = asyncio.create_task(promote_on_replica_2())
            await asyncio.sleep(0.5)
            assert not replica_2.done(), "the promotion waits for the function's result being applied"
        await asyncio.wait_for(replica_2, 30)
        async with db1.transaction() as s:
            assert (await BadcaseService(s, settings).get(a_id)).status == "fixed"
    finally:
        await db1.dispose()
        await db2.dispose()
