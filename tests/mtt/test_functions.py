"""The function is the unit of the loop (docs/functions.md): a version is tested on its own function's current
badcase test set and its own test split(s), never another function's; `testing.requested` makes one task per
version and set; a set the model cannot take fails before any run (`testing.failed`); own testing code gets the
model file; one multipart call creates a task with its code."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from contextlib import suppress
from typing import Any

import httpx
import pytest
from PIL import Image

from mlife_shared.app import service_context
from mlife_shared.events import contracts as ev
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.app import SPEC
from mtt.config import Settings
from mtt.task.consumers import on_dataset_grouped, on_model_registered, on_testing_requested
from mtt.task.exceptions import DatasetNotSeenYet
from tests.mtt.archives import zipped
from tests.mtt.onnx_models import linear_classifier
from tests.support.mtt import PREP, deliver, digits, put_dataset, task_in
from tests.support.outbox import outbox_events


async def grouped(settings: Settings, items: list[tuple[bytes, str]], *, purpose: str = "test",
                  function: str | None, name: str, version: int = 1, group: uuid.UUID | None = None,
                  badcase: bool = False) -> str:
    """A dataset DAM grouped (its files and manifest in the store, then `dataset.grouped`) → its id."""
    ids = [str(uuid.uuid4()) for _ in items] if badcase else None
    ds, key = await put_dataset(settings, items, badcase_ids=ids)
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=uuid.UUID(ds), version=version, purpose=purpose, manifest_key=key, item_count=len(items),
        is_badcase_test_set=badcase, name=name, group_id=group, function=function, modality="file"))
    return ds


async def version_tasks(mtt: httpx.AsyncClient, version_id: uuid.UUID) -> list[dict[str, Any]]:
    tasks = (await mtt.get("/tasks", params={"kind": "test", "model_version_id": str(version_id)})).json()
    return sorted(tasks, key=lambda t: t["name"])


async def put_model(settings: Settings, key: str, data: bytes | None = None) -> str:
    await make_store(settings).put(key, iterate(data or linear_classifier()))
    return key


async def test_each_version_is_tested_on_its_functions_sets_only(mtt: httpx.AsyncClient, settings: Settings,
                                                                 start_runner) -> None:  # type: ignore[no-untyped-def]
    settings.auto_run = False  # queued below, by hand: only function digits' tasks run here
    settings.default_train_params = {"preprocess": PREP}
    data = digits(30)
    # function digits: a grouping (train + test split), two versions of its badcase test set
    group = uuid.uuid4()
    split_a = await grouped(settings, data[:6], function="digits", name="digits-demo", group=group)
    await grouped(settings, data[6:20], purpose="train", function="digits", name="digits-demo",
                            group=group)
    await grouped(settings, data[20:22], function="digits", name="badcase test set: digits", version=1,
                  badcase=True)
    bad_a = await grouped(settings, data[20:24], function="digits", name="badcase test set: digits", version=2,
                          badcase=True)
    # function shapes: its own test split and badcase test set, grouped last (the latest of any function)
    split_b = await grouped(settings, data[24:27], function="shapes", name="shapes", version=1)
    bad_b = await grouped(settings, data[27:30], function="shapes", name="badcase test set: shapes", version=5,
                          badcase=True)

    # the training task takes its function from its train dataset; its model declares function and test split
    (train,) = (await mtt.get("/tasks", params={"kind": "train"})).json()
    assert train["function"] == "digits" and train["status"] == "draft"
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "digits"}, content=linear_classifier())
    assert r.status_code == 201, r.text
    (uploaded,) = [e["data"] for e in await outbox_events(settings, "model.uploaded")]
    assert uploaded["function"] == "digits" and uploaded["test_dataset_ids"] == [split_a]
    other = (await mtt.post("/tasks", json={"kind": "train", "datasets": [{"dataset_id": split_b}]})).json()
    assert other["function"] == "shapes"
    assert (await mtt.patch(f"/tasks/{other['id']}", json={"function": "digits"})).json()["function"] == "digits"

    # a digits version (the event names neither function nor split: its training task's), twice
    v_a = uuid.uuid4()
    registered_a = ModelRegistered(model_version_id=v_a, name="digits", version="3", format="onnx",
                                   object_key=uploaded["object_key"], task_id=uuid.UUID(train["id"]))
    for _ in range(2):
        await deliver(settings, on_model_registered, registered_a)
    # a shapes version that declares its function and split
    v_b = uuid.uuid4()
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=v_b, name="shapes", version="1", format="onnx", function="shapes",
        object_key=await put_model(settings, "models/shapes/model.onnx"), test_dataset_ids=[uuid.UUID(split_b)]))
    # a version of no known function and no training task: no badcase test set is guessed for it
    v_c = uuid.uuid4()
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=v_c, name="orphan", version="1", format="onnx",
        object_key=await put_model(settings, "models/orphan/model.onnx")))

    a_tasks = await version_tasks(mtt, v_a)
    assert [(t["name"], t["set_kind"], t["function"], t["datasets"][0]["dataset_id"]) for t in a_tasks] == [
        ("regression digits v3 on badcase test set: digits v2", "badcase_test_set", "digits", bad_a),
        ("regression digits v3 on test split digits-demo v1", "test_split", "digits", split_a)]
    assert all(t["status"] == "ready" and t["params"]["preprocess"] == PREP for t in a_tasks)
    b_tasks = await version_tasks(mtt, v_b)
    assert [(t["name"], t["set_kind"], t["function"], t["datasets"][0]["dataset_id"]) for t in b_tasks] == [
        ("regression shapes v1 on badcase test set: shapes v5", "badcase_test_set", "shapes", bad_b),
        ("regression shapes v1 on test split shapes v1", "test_split", "shapes", split_b)]
    assert await version_tasks(mtt, v_c) == []
    shapes = (await mtt.get("/tasks", params={"function": "shapes", "kind": "test"})).json()
    assert {t["id"] for t in shapes} >= {t["id"] for t in b_tasks}  # (and the drafts made when B's sets came)
    assert {t["datasets"][0]["dataset_id"] for t in shapes} == {split_b, bad_b}

    # run digits' tasks: testing.completed says function, version id and set
    for t in a_tasks:
        assert (await mtt.post(f"/tasks/{t['id']}/run")).status_code == 202
    start_runner("runner-fn")
    for t in a_tasks:
        done = await task_in(mtt, t["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done["error"]
    completed = sorted((e["data"]["set_kind"], e["data"]["dataset_id"], e["data"]["function"],
                        e["data"]["model_version_id"]) for e in await outbox_events(settings, "testing.completed"))
    assert completed == [("badcase_test_set", bad_a, "digits", str(v_a)), ("test_split", split_a, "digits", str(v_a))]


async def test_testing_requested_makes_one_task_per_version_and_set(mtt: httpx.AsyncClient,
                                                                     settings: Settings) -> None:
    assert "testing.requested" in {s.subject for s in SPEC.subscriptions(service_context(SPEC, settings))}
    settings.auto_run = False
    data = digits(10)
    split = await grouped(settings, data[:5], function="digits", name="digits-demo")
    bad = await grouped(settings, data[5:], function="digits", name="badcase test set: digits", version=4,
                        badcase=True)
    key = await put_model(settings, "models/digits/v3.onnx")
    version = uuid.uuid4()
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=version, name="digits", version="3", format="onnx", object_key=key, function="digits",
        test_dataset_ids=[uuid.UUID(split)], task_id=None))
    assert [t["status"] for t in await version_tasks(mtt, version)] == ["ready", "ready"]

    def request(dataset: str, set_kind: str = "badcase_test_set", v: uuid.UUID = version, fmt: str = "onnx",
                model_version: str = "3") -> ev.TestingRequested:
        return ev.TestingRequested(model_version_id=v, model_name="digits", model_version=model_version, format=fmt,
                                object_key=key, function="digits", dataset_id=uuid.UUID(dataset),
                                set_kind=set_kind, reason="gate")  # type: ignore[arg-type]

    # the gate asks (twice) for the badcase-set result of a version already being tested: the same task, run once
    for _ in range(2):
        await deliver(settings, on_testing_requested, request(bad))
    tasks = await version_tasks(mtt, version)
    assert len(tasks) == 2
    on_bad = next(t for t in tasks if t["datasets"][0]["dataset_id"] == bad)
    assert (on_bad["status"], on_bad["attempt"], on_bad["origin"]) == ("queued", 1, "model.registered")
    # asked again after it was cancelled: a new attempt of the same task
    assert (await mtt.post(f"/tasks/{on_bad['id']}/cancel")).json()["status"] == "cancelled"
    (failed,) = [e["data"] for e in await outbox_events(settings, "testing.failed")]
    assert (failed["task_id"], failed["incompatible"], failed["set_kind"]) == (on_bad["id"], False, "badcase_test_set")
    await deliver(settings, on_testing_requested, request(bad))
    again = (await mtt.get(f"/tasks/{on_bad['id']}")).json()
    assert (again["status"], again["attempt"]) == ("queued", 2)

    # a version MTT never saw registered: one task, named like the automatic ones, queued
    fresh = uuid.uuid4()
    for _ in range(2):
        await deliver(settings, on_testing_requested, request(split, "test_split", fresh, model_version="4"))
    (task,) = await version_tasks(mtt, fresh)
    assert (task["name"], task["set_kind"], task["function"], task["status"], task["origin"]) == (
        "regression digits v4 on test split digits-demo v1", "test_split", "digits", "queued", "testing.requested")

    # what MTT cannot test is answered with testing.failed, and no task
    pt = uuid.uuid4()
    await deliver(settings, on_testing_requested, request(bad, v=pt, fmt="pt"))
    unknown = str(uuid.uuid4())
    await deliver(settings, on_testing_requested, request(unknown, "test_split", fresh, model_version="4"))
    assert await version_tasks(mtt, pt) == [] and len(await version_tasks(mtt, fresh)) == 1
    refused = {e["data"]["model_version_id"]: e["data"] for e in await outbox_events(settings, "testing.failed")
               if e["data"]["task_id"] is None}
    assert refused[str(pt)]["incompatible"] and "ONNX" in refused[str(pt)]["reason"]
    assert not refused[str(fresh)]["incompatible"] and unknown in refused[str(fresh)]["reason"]

    # a badcase test set the gate asks about before its dataset.grouped reached MTT (two streams, no order):
    # retried, not refused; once the set's dataset.grouped is in, the same request makes its task
    items = digits(5)
    late, key = await put_dataset(settings, items, badcase_ids=[str(uuid.uuid4()) for _ in items])
    with pytest.raises(DatasetNotSeenYet):
        await deliver(settings, on_testing_requested, request(late, v=fresh, model_version="4"))
    assert len(await version_tasks(mtt, fresh)) == 1
    assert late not in {e["data"]["dataset_id"] for e in await outbox_events(settings, "testing.failed")}
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=uuid.UUID(late), version=2, purpose="test", manifest_key=key, item_count=len(items),
        is_badcase_test_set=True, name="badcase test set: digits", function="digits", modality="file"))
    await deliver(settings, on_testing_requested, request(late, v=fresh, model_version="4"))
    assert len(await version_tasks(mtt, fresh)) == 2


def resized(items: list[tuple[bytes, str]], size: int) -> list[tuple[bytes, str]]:
    out = []
    for data, label in items:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).resize((size, size)).save(buf, format="PNG")
        out.append((buf.getvalue(), label))
    return out


async def test_an_incompatible_set_fails_before_any_run(mtt: httpx.AsyncClient, settings: Settings,
                                                        start_runner) -> None:  # type: ignore[no-untyped-def]
    settings.default_train_params = {"preprocess": PREP}  # the model takes 8x8 images
    group = uuid.uuid4()
    split = await grouped(settings, resized(digits(4), 16), function="digits", name="digits-16", group=group)
    train = await grouped(settings, digits(6), purpose="train", function="digits", name="digits-16", group=group)
    # the function's badcase test set holds table rows (no files at all)
    store = make_store(settings)
    rows = "".join(json.dumps({"features": {"a": i, "b": 2 * i}, "label": str(i), "extra": {}}) + "\n"
                   for i in range(3))
    bad = str(uuid.uuid4())
    await store.put(f"dam/datasets/{bad}/manifest.jsonl", iterate(rows.encode()))
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=uuid.UUID(bad), version=1, purpose="test", manifest_key=f"dam/datasets/{bad}/manifest.jsonl",
        item_count=3, is_badcase_test_set=True, name="badcase test set: digits", function="digits",
        modality="table"))
    (task,) = [t for t in (await mtt.get("/tasks", params={"kind": "train"})).json()
               if t["datasets"][0]["dataset_id"] == train]
    version = uuid.uuid4()
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=version, name="digits", version="5", format="onnx", task_id=uuid.UUID(task["id"]),
        object_key=await put_model(settings, "models/digits/v5.onnx")))
    tasks = await version_tasks(mtt, version)
    assert [t["set_kind"] for t in tasks] == ["badcase_test_set", "test_split"] and \
        all(t["status"] == "queued" for t in tasks)
    start_runner("runner-compat")
    done = {t["set_kind"]: await task_in(mtt, t["id"], "succeeded", "failed") for t in tasks}
    assert all(d["status"] == "failed" and d["error"].startswith("incompatible: ") for d in done.values())
    assert "table rows" in done["badcase_test_set"]["error"] and "8x8" in done["test_split"]["error"]
    for d in done.values():  # found before any run: no MLflow run, no evaluation
        assert d["mlflow_run_id"] is None and d["outcomes_key"] is None
        assert "evaluating" not in (await mtt.get(f"/tasks/{d['id']}/logs")).json()["text"]
    failed = sorted((e["data"] for e in await outbox_events(settings, "testing.failed")), key=lambda e: e["set_kind"])
    assert [(f["set_kind"], f["dataset_id"], f["incompatible"], f["model_name"], f["model_version"],
             f["model_version_id"], f["function"]) for f in failed] == [
        ("badcase_test_set", bad, True, "digits", "5", str(version), "digits"),
        ("test_split", split, True, "digits", "5", str(version), "digits")]
    assert all(f["reason"] == done[f["set_kind"]]["error"] for f in failed)
    report = (await mtt.get(f"/tasks/{done['test_split']['id']}/report")).json()
    assert (report["function"], report["set_kind"], report["model_version_id"], report["error"]) == (
        "digits", "test_split", str(version), done["test_split"]["error"])
    assert await outbox_events(settings, "testing.completed") == []


OWN_TESTING = """
import hashlib, os, sys
from mlife.tracking import dataset_items, log_metric, params, save_outcomes
path = os.environ["MLIFE_MODEL_PATH"]
digest = hashlib.md5(open(path, "rb").read()).hexdigest()
print("model at", path, digest, flush=True)
if digest != params()["expected_md5"]:
    sys.exit("not the model under test")
items = dataset_items()
save_outcomes([{"sample_id": it["md5"], "data_ref": it["md5"], "ground_truth": it["label"],
                "prediction": it["label"], "correct": True} for it in items])
log_metric("own_score", 1.0)
"""


async def test_one_call_creates_own_testing_code_that_gets_the_model(mtt: httpx.AsyncClient, settings: Settings,
                                                                     start_runner) -> None:  # type: ignore[no-untyped-def]
    ds, key = await put_dataset(settings, digits(5))
    model = linear_classifier(seed=3)
    object_key = await put_model(settings, "models/own/model.onnx", model)
    body = {"kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}], "command": "python main.py",
            "function": "digits", "params": {"expected_md5": hashlib.md5(model).hexdigest()}, "run": True,
            "model": {"name": "own", "version": "2", "object_key": object_key,
                      "model_version_id": str(uuid.uuid4())}}

    async def create(task: Any, code: bytes | None) -> httpx.Response:
        files: dict[str, Any] = {"task": (None, task if isinstance(task, str) else json.dumps(task))}
        if code is not None:
            files["code"] = ("code.zip", code, "application/zip")
        return await mtt.post("/tasks", files=files)

    # bad calls write nothing
    r = await mtt.post("/tasks", files={"code": ("code.zip", zipped({"main.py": ""}), "application/zip")})
    assert r.status_code == 422 and "`task` part" in r.json()["detail"]
    r = await create("{not json", zipped({"main.py": ""}))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "task"]
    r = await create({**body, "kind": "nope"}, zipped({"main.py": ""}))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "task", "kind"]
    r = await create(body, zipped({"../evil.py": ""}))
    assert r.status_code == 422 and "escaping" in r.json()["detail"]
    r = await create({**body, "code_location": "/tmp"}, zipped({"main.py": ""}))
    assert r.status_code == 422 and "not both" in r.json()["detail"]
    # a gzip bomb: its first header claims 2 GiB; refused there, before the rest would be decompressed
    bomb = tarfile.TarInfo("big.bin")
    bomb.size = 2 << 30
    r = await create(body, gzip.compress(bomb.tobuf() + b"\0" * 4096))
    assert r.status_code == 422 and "expands beyond" in r.json()["detail"], r.text
    assert (await mtt.get("/tasks")).json() == []
    # without code: a draft, as with JSON
    draft = await create({**body, "run": False}, None)
    assert draft.status_code == 201 and draft.json()["status"] == "draft"

    # one call: task, command, params and code → queued; the code sees the model file
    r = await create(body, zipped({"main.py": OWN_TESTING}))
    assert r.status_code == 201 and r.json()["status"] == "queued", r.text
    assert r.json()["code_location"].startswith("store:mtt/tasks/")
    failing = await create({**body, "name": "own failing"}, zipped({"main.py": "import sys\nsys.exit(4)\n"}))
    start_runner("runner-own-code")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    log = (await mtt.get(f"/tasks/{done['id']}/logs")).json()["text"]
    assert done["status"] == "succeeded", log
    assert f"model.onnx {hashlib.md5(model).hexdigest()}" in log and done["metrics"]["own_score"] == 1.0
    (tc,) = [e["data"] for e in await outbox_events(settings, "testing.completed")]
    assert (tc["task_id"], tc["function"], tc["model_version_id"], tc["set_kind"]) == (
        done["id"], "digits", body["model"]["model_version_id"], "other")
    # a run of own testing code that fails: testing.failed, not incompatible
    bad = await task_in(mtt, failing.json()["id"], "succeeded", "failed")
    assert bad["status"] == "failed" and "code 4" in bad["error"]
    (tf,) = [e["data"] for e in await outbox_events(settings, "testing.failed")]
    assert (tf["task_id"], tf["incompatible"], tf["reason"], tf["dataset_id"]) == (bad["id"], False, bad["error"], ds)


async def test_testing_requested_through_jetstream(mtt: httpx.AsyncClient, settings: Settings,
                                                   nats_url: str) -> None:
    """MSM's two requests for one set (two events) through the real bus and MTT's consumer: one task."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    from mlife_shared.app import ServiceContext
    from mlife_shared.db import Database
    from mlife_shared.events import new_envelope, stream_for_subject
    from mlife_shared.messaging.bus import provision_streams
    from mlife_shared.messaging.consumer import ConsumerRunner, durable_name
    from tests.support.waiting import wait_for

    settings.auto_run = False
    split = await grouped(settings, digits(4), function="digits", name="digits-demo")
    key = await put_model(settings, "models/digits/v8.onnx")
    version = uuid.uuid4()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    for _ in range(2):
        env = new_envelope(ev.TestingRequested(
            model_version_id=version, model_name="digits", model_version="8", format="onnx", object_key=key,
            function="digits", dataset_id=uuid.UUID(split), set_kind="test_split", reason="gate"))
        await js.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})
    app = mtt.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    subs = [s for s in SPEC.subscriptions(ctx) if s.subject == "testing.requested"]
    service = f"mtt-t{uuid.uuid4().hex[:8]}"  # a durable of this test's own on the shared stream
    db = Database(settings.database_url)
    runner = ConsumerRunner(service, db, js, subs, max_deliver=2, backoff=[0.1])
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))

    async def settled() -> bool:
        return bool(await version_tasks(mtt, version)) and sum((await runner.lag()).values()) == 0

    try:
        await wait_for(settled, "the consumer to take both requests")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        with suppress(NotFoundError):
            await js.delete_consumer(stream_for_subject("testing.requested"), durable_name(service, subs[0]))
        await nc.close()
        await db.dispose()
    (task,) = await version_tasks(mtt, version)
    assert (task["status"], task["attempt"], task["origin"], task["set_kind"]) == (
        "queued", 1, "testing.requested", "test_split")


async def test_two_consumers_asked_for_one_set_at_once_make_one_task(mtt: httpx.AsyncClient,
                                                                     settings: Settings) -> None:
    """Two MTT consumers handle `testing.requested` for the same version and set at the same moment: the second
    one's insert waits on the first's unique keys (the version, the task's dedup key) and then takes its rows —
    one task, and no handler fails (no retry, no error in the gate's way)."""
    import asyncio

    from mlife_shared.db import Database

    settings.auto_run = False
    split = await grouped(settings, digits(4), function="digits", name="digits-demo")
    await grouped(settings, digits(3), function="digits", name="badcase test set: digits", badcase=True)
    key = await put_model(settings, "models/digits/v9.onnx")
    ctx = service_context(SPEC, settings)

    def request(version: uuid.UUID, dataset: str) -> ev.TestingRequested:
        return ev.TestingRequested(model_version_id=version, model_name="digits", model_version="9", format="onnx",
                                   object_key=key, function="digits", dataset_id=uuid.UUID(dataset),
                                   set_kind="test_split", reason="gate")

    async def at_once(version: uuid.UUID, dataset: str) -> None:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as first:  # holds its inserts until the second has started
                await on_testing_requested(new_envelope(request(version, dataset)), first, ctx=ctx)
                second = asyncio.create_task(deliver(settings, on_testing_requested, request(version, dataset)))
                await asyncio.sleep(1.0)
                assert not second.done()  # waiting on the first's uncommitted rows
            await second
        finally:
            await db.dispose()

    fresh = uuid.uuid4()  # never seen: both insert the version (its primary key) first
    await at_once(fresh, split)
    known = uuid.uuid4()  # already registered: both insert the task (its dedup key)
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=known, name="digits", version="9", format="onnx", object_key=key, function="digits"))
    await at_once(known, split)
    for version in (fresh, known):
        (task,) = [t for t in await version_tasks(mtt, version) if t["datasets"][0]["dataset_id"] == split]
        assert (task["status"], task["attempt"]) == ("queued", 1)
    assert [t["set_kind"] for t in await version_tasks(mtt, known)] == ["badcase_test_set", "test_split"]
