"""BAM's consumers on real NATS JetStream and PostgreSQL: testing outcomes per model version (with a
regression), mispredictions reported as badcases, and serving feedback."""

from __future__ import annotations

import uuid

import httpx

from mlife_shared.events.contracts import ServingFeedback, TestingCompleted
from tests.support.bam import outcomes_recorded, report, run_consumers, write_outcomes
from tests.support.nats import publish
from tests.support.outbox import outbox_events


async def test_outcomes_are_kept_per_version_and_mispredictions_become_badcases_with_their_ids(
        bam: httpx.AsyncClient, bam_db: str, bus) -> None:  # type: ignore[no-untyped-def]
    a = (await bam.post("/badcases", json=report())).json()
    b = (await bam.post("/badcases", json=report(ground_truth="angry"))).json()
    task, version_id = uuid.uuid4(), uuid.uuid4()
    v1 = await write_outcomes(bam, [
        {"badcase_id": a["id"], "correct": True, "prediction": "sad", "ground_truth": "sad"},
        {"badcase_id": b["id"], "correct": False, "prediction": "happy", "ground_truth": "angry"},
        {"data_ref": "a" * 32, "correct": False, "prediction": "cat", "ground_truth": "dog"},
        {"data_ref": "b" * 32, "correct": True, "prediction": "dog", "ground_truth": "dog"},
    ])
    await publish(bus, TestingCompleted(task_id=task, model_name="expr", model_version="2.0", function="emotion",
                                        model_version_id=version_id, set_kind="badcase_test_set", outcomes_key=v1))
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 1))
    assert (await bam.get(f"/badcases/{a['id']}")).json()["status"] == "new", "a candidate's pass fixes nothing"
    testing = (await bam.get("/badcases", params={"source": "testing"})).json()["items"]
    assert len(testing) == 1 and testing[0]["ground_truth"] == "dog" and testing[0]["model_version"] == "2.0"
    assert testing[0]["data_md5"] == "a" * 32 and testing[0]["function"] == "emotion"
    assert testing[0]["task_id"] == str(task) and testing[0]["model_version_id"] == str(version_id)
    by_task = (await bam.get("/badcases", params={"task_id": str(task)})).json()["items"]
    assert [x["id"] for x in by_task] == [testing[0]["id"]]
    created = [e["data"] for e in await outbox_events(bam_db, "badcase.created") if e["data"]["source"] == "testing"]
    assert created[0]["task_id"] == str(task) and created[0]["model_version_id"] == str(version_id)

    v2 = await write_outcomes(bam, [{"badcase_id": a["id"], "correct": False, "prediction": "happy"},
                                    {"data_ref": "a" * 32, "correct": False, "prediction": "cat",
                                     "ground_truth": "dog"}])
    task2 = uuid.uuid4()
    await publish(bus, TestingCompleted(task_id=task2, model_name="expr", model_version="3.0",
                                        function="emotion", outcomes_key=v2))
    await run_consumers(bam, bam_db, bus, outcomes_recorded(bam, a["id"], 2))
    outcomes = (await bam.get(f"/badcases/{a['id']}/outcomes")).json()
    by_version = {o["model_version"]: o["passed"] for o in outcomes["by_model_version"]}
    assert by_version == {"2.0": True, "3.0": False}
    assert {o["model_version"]: o["model_version_id"] for o in outcomes["history"]} == {"2.0": str(version_id),
                                                                                        "3.0": None}
    again = (await bam.get("/badcases", params={"source": "testing"})).json()["items"]
    assert len(again) == 1 and again[0]["frequency"] == 2, "the same misprediction merged"
    assert again[0]["task_id"] == str(task), "a badcase names the task that found it first"
    occurrences = (await bam.get(f"/badcases/{again[0]['id']}/occurrences")).json()
    assert [o["task_id"] for o in occurrences] == [str(task2), str(task)]
    assert (await bam.get(f"/badcases/{a['id']}/history")).json() == []
    assert await outbox_events(bam_db, "badcase.updated") == []


async def test_serving_feedback_becomes_a_badcase_with_its_deployment(bam: httpx.AsyncClient, bam_db: str,
                                                                      bus) -> None:  # type: ignore[no-untyped-def]
    deployment, version_id = uuid.uuid4(), uuid.uuid4()
    await publish(bus, ServingFeedback(deployment_id=deployment, model_name="digits", model_version="4",
                                       function="digit recognition", model_version_id=version_id, input_ref="c" * 32,
                                       prediction="3", correct_label="8", client_id="shop-12", device_id="cam-3"))

    async def _filed() -> bool:
        return bool((await bam.get("/badcases", params={"source": "serving"})).json()["items"])

    await run_consumers(bam, bam_db, bus, _filed)
    item = (await bam.get("/badcases", params={"source": "serving"})).json()["items"][0]
    assert item["function"] == "digit recognition" and item["ground_truth"] == "8" and item["prediction"] == "3"
    assert item["client_id"] == "shop-12" and item["device_id"] == "cam-3" and item["data_md5"] == "c" * 32
    assert item["deployment_id"] == str(deployment) and item["model_version_id"] == str(version_id)
    assert item["task_id"] is None
    occ = (await bam.get(f"/badcases/{item['id']}/occurrences")).json()
    assert occ[0]["deployment_id"] == str(deployment) and occ[0]["source"] == "serving"
    assert occ[0]["model_version_id"] == str(version_id)
    assert [i["id"] for i in (await bam.get("/badcases", params={"deployment_id": str(deployment)})).json()["items"]] \
        == [item["id"]]
    assert (await bam.get("/badcases", params={"deployment_id": str(uuid.uuid4())})).json()["items"] == []
    stats = (await bam.get("/stats", params={"group_by": "function", "model_version_id": str(version_id)})).json()
    assert stats["total"] == 1 and stats["groups"][0]["key"] == {"function": "digit recognition"}
    created = (await outbox_events(bam_db, "badcase.created"))[0]["data"]
    assert created["deployment_id"] == str(deployment) and created["model_version_id"] == str(version_id)


async def test_events_without_a_function_file_badcases_under_unassigned_never_the_model_name(
        bam: httpx.AsyncClient, bam_db: str, bus) -> None:  # type: ignore[no-untyped-def]
    emotion = (await bam.post("/badcases", json=report())).json()
    await publish(bus, ServingFeedback(deployment_id=uuid.uuid4(), model_name="digits", model_version="4",
                                       input_ref="d" * 32, prediction="3", correct_label="8"))
    key = await write_outcomes(bam, [
        {"data_ref": "e" * 32, "correct": False, "prediction": "1", "ground_truth": "7"},
        {"badcase_id": emotion["id"], "correct": True, "prediction": "sad"}])
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="digits", model_version="4",
                                        outcomes_key=key))

    async def _both() -> bool:
        return len((await bam.get("/badcases", params={"function": "unassigned"})).json()["items"]) == 2

    await run_consumers(bam, bam_db, bus, _both)
    items = (await bam.get("/badcases", params={"function": "unassigned"})).json()["items"]
    assert {i["source"] for i in items} == {"serving", "testing"}
    assert (await bam.get("/badcases", params={"function": "digits"})).json()["items"] == []
    # The emotion badcase is not the function-less model's business: no outcome recorded on it.
    assert (await bam.get(f"/badcases/{emotion['id']}/outcomes")).json()["history"] == []
    stats = (await bam.get("/stats", params={"group_by": "function"})).json()
    assert {g["key"]["function"]: g["count"] for g in stats["groups"]} == {"unassigned": 2, "emotion": 1}


async def test_unreadable_outcomes_are_dead_lettered_not_dropped(bam: httpx.AsyncClient, bam_db: str,
                                                                 bus) -> None:  # type: ignore[no-untyped-def]
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="m", model_version="1",
                                        outcomes_key="mtt/outcomes/missing.jsonl"))
    admin = {"X-MLife-Identity": bam.headers["X-MLife-Identity"]}

    async def _dead() -> bool:
        r = await bam.get("/dead-letters", headers=admin)
        return len(r.json()) == 1

    await run_consumers(bam, bam_db, bus, _dead)
    letter = (await bam.get("/dead-letters")).json()[0]
    assert letter["reason"] == "failed" and "missing.jsonl" in letter["error"]


async def test_a_tabular_misprediction_keeps_its_feature_row(bam: httpx.AsyncClient, bam_db: str,
                                                             bus) -> None:  # type: ignore[no-untyped-def]
    key = await write_outcomes(bam, [
        {"features": {"alcohol": 13.2, "hue": 1.04}, "correct": False, "prediction": 5.0, "ground_truth": 7.0,
         "error": 2.0},
        {"features": {"alcohol": 12.1, "hue": 0.9}, "correct": False, "prediction": 5.0, "ground_truth": 7.0,
         "error": 2.0},
        {"features": {"alcohol": 11.0, "hue": 0.7}, "correct": True, "prediction": 6.0, "ground_truth": 6.2}])
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="wine", model_version="1",
                                        function="wine-quality", outcomes_key=key))

    async def _two() -> bool:
        return len((await bam.get("/badcases", params={"function": "wine-quality"})).json()["items"]) == 2

    await run_consumers(bam, bam_db, bus, _two)
    items = (await bam.get("/badcases", params={"function": "wine-quality"})).json()["items"]
    assert sorted(i["features"]["alcohol"] for i in items) == [12.1, 13.2]
    assert all(i["data"] == [] and i["source"] == "testing" for i in items)


async def test_a_line_that_cannot_be_a_badcase_is_counted_and_the_rest_of_the_event_applies(
        bam: httpx.AsyncClient, bam_db: str, bus) -> None:  # type: ignore[no-untyped-def]
    """Testing code writes the outcome lines: nested features, a 100 KiB ground truth or an unsafe key can never be a
    badcase, but the event's other outcomes and mispredictions are still recorded (not dead-lettered with them)."""
    a = (await bam.post("/badcases", json=report())).json()
    key = await write_outcomes(bam, [
        {"features": {"alcohol": {"value": 13.2}}, "correct": False, "prediction": 5, "ground_truth": 7},
        {"data_ref": "f" * 32, "correct": False, "prediction": "x", "ground_truth": "y" * 100_000},
        {"data_ref": "../../etc/passwd", "correct": False, "prediction": "x", "ground_truth": "z"},
        {"badcase_id": a["id"], "correct": True, "prediction": "sad"},
        {"features": {"alcohol": 12.1}, "correct": False, "prediction": 5, "ground_truth": 6}])
    await publish(bus, TestingCompleted(task_id=uuid.uuid4(), model_name="expr", model_version="2.0",
                                        function="emotion", outcomes_key=key))

    async def _applied() -> bool:
        return bool((await bam.get("/badcases", params={"source": "testing"})).json()["items"])

    await run_consumers(bam, bam_db, bus, _applied)
    testing = (await bam.get("/badcases", params={"source": "testing"})).json()["items"]
    assert [i["features"] for i in testing] == [{"alcohol": 12.1}]
    assert len((await bam.get(f"/badcases/{a['id']}/outcomes")).json()["history"]) == 1
    assert (await bam.get("/dead-letters")).json() == []
