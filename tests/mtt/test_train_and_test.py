"""Done-when: the example training script runs as a real task on a grouped dataset, logs to a real MLflow
server and uploads its model (model.uploaded); a testing task evaluates it and testing.completed names
the outcomes with the mispredictions; model.registered → regression tasks on the badcase test set."""

from __future__ import annotations

import json
import uuid

import httpx

from mlife_shared.db import Database
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered
from mlife_shared.events.contracts import TestingOutcomeLine as OutcomeLine
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import read_all
from mtt.config import Settings
from mtt.task.consumers import on_dataset_grouped, on_model_registered
from tests.support.mtt import ROOT, deliver, digits, put_dataset, task_in
from tests.support.outbox import outbox_events

EXAMPLE = str(ROOT / "examples" / "digits")


async def bam_badcases_from(settings: Settings, envelope: dict, bam_db: str) -> int:
    """Apply BAM's own testing.completed handler to MTT's event; → badcases BAM recorded from testing."""
    from sqlalchemy import func, select

    from bam.app import SPEC as BAM
    from bam.badcase.models import Badcase
    from bam.config import Settings as BamSettings
    from bam.outcome.consumers import on_testing_completed
    from mlife_shared.app import service_context
    from mlife_shared.events import Envelope
    from mlife_shared.events.contracts import TestingCompleted

    bam_settings = BamSettings(environment="test", database_url=bam_db, identity_secret="x", home=settings.home,
                               object_store=settings.object_store, s3_endpoint=settings.s3_endpoint,
                               s3_access_key=settings.s3_access_key, s3_secret_key=settings.s3_secret_key,
                               s3_bucket=settings.s3_bucket)
    event = Envelope[TestingCompleted].model_validate(envelope)
    db = Database(bam_db)
    try:
        async with db.transaction() as session:
            await on_testing_completed(event, session, service_context(BAM, bam_settings))
        async with db.transaction() as session:
            return int((await session.execute(select(func.count()).select_from(Badcase)
                                              .where(Badcase.source == "testing"))).scalar_one())
    finally:
        await db.dispose()


async def test_train_on_grouped_dataset_then_test_and_regress(mtt: httpx.AsyncClient, settings: Settings,
                                                              start_runner, mlflow_server: str,
                                                              make_database) -> None:  # type: ignore[no-untyped-def]
    bam_db = await make_database("bam.migrations")
    data = digits()
    train_items, test_items = data[:1200], data[1200:]
    train_id, train_key = await put_dataset(settings, train_items)
    test_id, test_key = await put_dataset(settings, test_items)
    # DAM grouped a train and a test dataset (one grouping; DAM's outbox sends test first): MTT keeps a
    # projection and makes a training task that also gets the grouping's test set
    settings.default_train_code, settings.default_train_command = EXAMPLE, "python train.py"
    settings.default_train_params = {"model_name": "digits", "C": 0.5}
    group = uuid.uuid4()
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=uuid.UUID(test_id), version=1, purpose="test", manifest_key=test_key, item_count=len(test_items),
        group_id=group, name="digits", function="digits"))
    drafts = (await mtt.get("/tasks", params={"kind": "test"})).json()  # no default model: waits for one
    assert [(t["status"], t["datasets"][0]["dataset_id"]) for t in drafts] == [("draft", test_id)]
    for _ in range(2):  # a redelivery makes no second task
        await deliver(settings, on_dataset_grouped, DatasetGrouped(
            dataset_id=uuid.UUID(train_id), version=1, purpose="train", manifest_key=train_key,
            item_count=len(train_items), group_id=group, name="digits", function="digits"))
    tasks = (await mtt.get("/tasks", params={"kind": "train"})).json()
    assert len(tasks) == 1 and tasks[0]["status"] == "queued" and tasks[0]["origin"] == "dataset.grouped"
    assert tasks[0]["function"] == "digits"  # the train dataset's
    train = tasks[0]
    assert [(d["dataset_id"], d["purpose"]) for d in train["datasets"]] == [(train_id, "train"), (test_id, "test")]
    start_runner("runner-a")
    done = await task_in(mtt, train["id"], "succeeded", "failed", "cancelled")
    logs = (await mtt.get(f"/tasks/{train['id']}/logs")).json()
    assert done["status"] == "succeeded", (done["error"], logs["text"][-2000:])
    assert f"training on 1200 items, testing on {len(test_items)}" in logs["text"] and logs["complete"]
    assert done["metrics"]["train_accuracy"] > 0.9 and done["metrics"]["test_accuracy"] > 0.8
    # a real MLflow run: params, metrics (logged live by the SDK), dataset input with its digest, artifacts
    assert done["mlflow_run_id"] and done["mlflow_url"].endswith(f"/runs/{done['mlflow_run_id']}")
    run = httpx.get(f"{mlflow_server}/api/2.0/mlflow/runs/get", params={"run_id": done["mlflow_run_id"]}).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"] for m in run["data"]["metrics"]} >= {"train_accuracy"}
    assert any(p["key"] == "C" for p in run["data"]["params"])
    inputs = run["inputs"]["dataset_inputs"]
    assert inputs and inputs[0]["dataset"]["digest"] and inputs[0]["dataset"]["source"] == train_key
    arts = httpx.get(f"{mlflow_server}/api/2.0/mlflow/artifacts/list",
                     params={"run_id": done["mlflow_run_id"], "path": "models/digits"}).json()
    assert any(f["path"].endswith("model.onnx") for f in arts.get("files", []))
    # model.uploaded, with the model in the store
    uploaded = await outbox_events(settings, "model.uploaded")
    assert len(uploaded) == 1
    mu = uploaded[0]["data"]
    assert mu["model_name"] == "digits" and mu["format"] == "onnx" and mu["task_id"] == train["id"]
    assert mu["function"] == "digits" and mu["test_dataset_ids"] == [test_id]
    store = make_store(settings)
    assert (await store.stat(mu["object_key"])).size == mu["size"]
    assert [e["data"]["task_id"] for e in await outbox_events(settings, "task.finished")] == [train["id"]]

    # a testing task on the test dataset, built-in evaluator
    r = await mtt.post("/tasks", json={
        "kind": "test", "datasets": [{"dataset_id": test_id, "manifest_key": test_key}], "function": "digits",
        "model": {"name": "digits", "version": "1", "object_key": mu["object_key"]}, "run": True})
    assert r.status_code == 201, r.text
    test = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert test["status"] == "succeeded", test["error"]
    completed = [e["data"] for e in await outbox_events(settings, "testing.completed")]
    assert len(completed) == 1 and completed[0]["task_id"] == test["id"]
    tc = completed[0]
    assert tc["model_name"] == "digits" and tc["model_version"] == "1" and tc["dataset_id"] == test_id
    assert tc["function"] == "digits" and 0.8 < tc["metrics"]["accuracy"] < 1.0
    lines = [OutcomeLine.model_validate_json(x)
             for x in (await read_all(await store.get(tc["outcomes_key"]))).decode().splitlines()]
    assert len(lines) == len(test_items)
    wrong = [x for x in lines if not x.correct]
    assert len(wrong) == round(tc["metrics"]["errors"]) > 0
    assert all(x.prediction != x.ground_truth and x.data_ref for x in wrong)
    # BAM's consumer turns the mispredictions into badcases (its own database, the same store)
    assert await bam_badcases_from(settings, tc_event := next(
        e for e in await outbox_events(settings, "testing.completed") if e["data"]["task_id"] == test["id"]),
        bam_db) == len(wrong)
    assert tc_event["type"] == "testing.completed"
    # the report: confusion matrix, most-confused classes, per-class comparison
    rep = (await mtt.get(f"/tasks/{test['id']}/report")).json()
    assert len(rep["confusion"]) == len(rep["classes"]) == 10
    assert sum(map(sum, rep["confusion"])) == len(test_items)
    top = rep["most_confused"][0]
    assert rep["confusion"][rep["classes"].index(top["true"])][rep["classes"].index(top["predicted"])] == top["count"]

    # MSM registered the model; a badcase test set exists → regression tasks (badcase set + own test set)
    bad_items = test_items[:5]
    bad_ids = [str(uuid.uuid4()) for _ in bad_items]
    bad_id, bad_key = await put_dataset(settings, bad_items, badcase_ids=bad_ids)
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=uuid.UUID(bad_id), version=3, purpose="test", manifest_key=bad_key, item_count=5,
        is_badcase_test_set=True, name="badcase test set: digits", function="digits"))
    version_id = uuid.uuid4()  # (the event names no function and no test split: its training task's)
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=version_id, name="digits", version="2", format="onnx", object_key=mu["object_key"],
        task_id=uuid.UUID(train["id"])))
    regression = [t for t in (await mtt.get("/tasks", params={"kind": "test"})).json()
                  if t["origin"] == "model.registered"]
    assert sorted(t["datasets"][0]["dataset_id"] for t in regression) == sorted([bad_id, test_id])
    assert sorted((t["name"], t["set_kind"], t["function"], t["model_version_id"]) for t in regression) == [
        ("regression digits v2 on badcase test set: digits v3", "badcase_test_set", "digits", str(version_id)),
        ("regression digits v2 on test split digits v1", "test_split", "digits", str(version_id))]
    for t in regression:
        assert (await task_in(mtt, t["id"], "succeeded", "failed"))["status"] == "succeeded"
    reg_bad = next(t for t in regression if t["datasets"][0]["dataset_id"] == bad_id)
    tc_bad = next(e["data"] for e in await outbox_events(settings, "testing.completed")
                  if e["data"]["task_id"] == reg_bad["id"])
    assert (tc_bad["function"], tc_bad["set_kind"], tc_bad["model_version_id"]) == (
        "digits", "badcase_test_set", str(version_id))
    lines = [json.loads(x) for x in (await read_all(await store.get(tc_bad["outcomes_key"]))).decode().splitlines()]
    assert sorted(x["badcase_id"] for x in lines) == sorted(bad_ids)  # the outcome of each badcase
    # compare two testing tasks class by class
    reg_test = next(t for t in regression if t["datasets"][0]["dataset_id"] == test_id)
    cmp = (await mtt.get(f"/tasks/{reg_test['id']}/report", params={"compare_with": test["id"]})).json()["comparison"]
    assert len(cmp["per_class"]) == 10 and all(row["delta_f1"] == 0 for row in cmp["per_class"])
