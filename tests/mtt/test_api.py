"""Tasks through the API: creation rules and bad input (clear 4xx, nothing written, nothing executed)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx

from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.config import Settings
from tests.mtt.onnx_models import escaping_external_data, linear_classifier, malicious_pickle
from tests.support.auth import as_role
from tests.support.mtt import PREP, digits, put_dataset
from tests.support.outbox import outbox_events


async def put(settings: Settings, key: str, data: bytes) -> str:
    await make_store(settings).put(key, iterate(data))
    return key


async def test_create_rules_and_bad_input(mtt: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(20))
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    base = {"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}]}

    async def bad(body: dict, status: int = 422, needle: str = "") -> None:
        r = await mtt.post("/tasks", json=body)
        assert r.status_code == status, r.text
        assert needle.lower() in str(r.json()["detail"]).lower(), r.json()

    await bad({**base, "command": "python train.py", "code_location": "relative/dir"}, 422, "absolute")
    await bad({**base, "command": "python train.py", "code_location": str(tmp_path / "nope")}, 422, "not an existing")
    await bad({**base, "command": "python 'unterminated", "code_location": str(code)}, 422, "does not parse")
    await bad({**base, "datasets": [{"dataset_id": str(uuid.uuid4())}]}, 422, "manifest_key")
    await bad({**base, "datasets": [{"dataset_id": ds, "manifest_key": "dam/datasets/none/manifest.jsonl"}]}, 422,
              "does not exist")
    await bad({**base, "datasets": [{"dataset_id": ds, "manifest_key": "../etc/passwd"}]}, 422, "object key")
    await bad({**base, "params": {"preprocess": {"size": [8], "layout": "flat"}}}, 422, "preprocess")
    await bad({**base, "run": True}, 422, "cannot run")
    await bad({**base, "unknown": 1}, 422)
    r = await mtt.post("/tasks", json=base, headers=as_role("viewer"))
    assert r.status_code == 403
    assert (await mtt.get("/tasks")).json() == []  # nothing partial was written
    assert await outbox_events(settings) == []

    # a draft until its code is set; then ready; runs queue a new attempt
    draft = (await mtt.post("/tasks", json=base)).json()
    assert draft["status"] == "draft"
    r = await mtt.post(f"/tasks/{draft['id']}/run")
    assert r.status_code == 409 and "code_location" in r.json()["detail"]
    r = await mtt.patch(f"/tasks/{draft['id']}", json={"command": "python train.py", "function": "digits"})
    assert r.status_code == 200 and r.json()["status"] == "draft"  # a command still waiting for its code
    assert r.json()["function"] == "digits"
    r = await mtt.post(f"/tasks/{draft['id']}/run")
    assert r.status_code == 409 and "upload it" in r.json()["detail"]
    r = await mtt.patch(f"/tasks/{draft['id']}", json={"code_location": str(code)})
    assert r.status_code == 200 and r.json()["status"] == "ready"
    r = await mtt.post(f"/tasks/{draft['id']}/run")
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["attempt"] == 1
    assert (await mtt.post(f"/tasks/{draft['id']}/run")).status_code == 409
    r = await mtt.post(f"/tasks/{draft['id']}/cancel")  # queued, no runner yet: cancelled at once
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert (await mtt.post(f"/tasks/{draft['id']}/cancel")).status_code == 409
    assert [e["data"]["reason"] for e in await outbox_events(settings, "task.failed")] == ["cancelled by erin"]
    assert len(await outbox_events(settings, "task.created")) == 1
    # a command without its code is a draft (the code comes later, or in the same call: see test_functions)
    r = await mtt.post("/tasks", json={**base, "command": "python train.py"})
    assert r.status_code == 201 and r.json()["status"] == "draft"
    r = await mtt.post("/tasks", json={**base, "command": "python train.py", "run": True})
    assert r.status_code == 422 and "upload it" in r.json()["detail"]
    assert (await mtt.get(f"/tasks/{uuid.uuid4()}")).status_code == 404


async def test_models_are_inspected_never_executed(mtt: httpx.AsyncClient, settings: Settings) -> None:
    ds, key = await put_dataset(settings, digits(20))
    marker = Path("/tmp/mtt-pickle-was-executed")
    marker.unlink(missing_ok=True)
    good = await put(settings, "models/good/model.onnx", linear_classifier())
    pickled = await put(settings, "models/pickle/model.onnx", malicious_pickle())
    escaping = await put(settings, "models/escape/model.onnx", escaping_external_data())
    test = {"kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}], "params": {"preprocess": PREP}}

    def model(k: str) -> dict:
        return {"name": "m", "version": "1", "object_key": k}

    r = await mtt.post("/tasks", json={**test, "model": model(pickled)})
    assert r.status_code == 422 and "pickle" in r.json()["detail"], r.text
    r = await mtt.post("/tasks", json={**test, "model": model(escaping)})
    assert r.status_code == 422 and "external" in r.json()["detail"].lower(), r.text
    r = await mtt.post("/tasks", json={**test, "model": model("models/none/model.onnx")})
    assert r.status_code == 422 and "does not exist" in r.json()["detail"]
    wrong_shape = {**test, "params": {"preprocess": {**PREP, "size": [16, 16]}}, "model": model(good)}
    r = await mtt.post("/tasks", json=wrong_shape)
    assert r.status_code == 422 and "shape" in r.json()["detail"], r.text
    r = await mtt.post("/tasks", json={**test, "params": {}, "model": model(good)})  # no preprocessing declared
    assert r.status_code == 201 and r.json()["status"] == "ready"  # (the run fails, saying so; see test_runners)
    assert (await mtt.post("/tasks", json={**test, "model": model(good)})).status_code == 201
    assert not marker.exists()

    # uploads by a training task: ONNX checked, model.uploaded sent; a pickle is refused
    train = (await mtt.post("/tasks", json={"kind": "train", "datasets": test["datasets"]})).json()
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "digits"}, content=malicious_pickle())
    assert r.status_code == 422 and "pickle" in r.json()["detail"]
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "digits"}, content=escaping_external_data())
    assert r.status_code == 422
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "../x"}, content=linear_classifier())
    assert r.status_code == 422
    assert await outbox_events(settings, "model.uploaded") == []
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "digits"}, content=linear_classifier())
    assert r.status_code == 201, r.text
    (ev,) = await outbox_events(settings, "model.uploaded")
    assert ev["data"]["object_key"] == r.json()["key"] and ev["data"]["md5"] == r.json()["md5"]
    r = await mtt.post(f"/tasks/{train['id']}/model", params={"name": "weights", "format": "pt"}, content=b"\x80\x04x")
    assert r.status_code == 201  # other formats are stored and tracked, not loaded
    r = await mtt.post(f"/tasks/{train['id']}/results", params={"name": "notes.txt"}, content=b"ok")
    assert r.status_code == 201
    task = (await mtt.get(f"/tasks/{train['id']}")).json()
    assert [a["kind"] for a in task["artifacts"]] == ["model", "model", "result"]
    assert not marker.exists() and os.path.exists("/tmp")


async def test_grouping_order_and_idempotence(mtt: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    """Train set first, its test set later: the test set joins the (not yet started) training task; a
    badcase test set gets a (draft) testing task like any test set; a non-ONNX model.registered makes none."""
    import uuid as _uuid

    from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered
    from mtt.task.consumers import on_dataset_grouped, on_model_registered
    from tests.support.mtt import deliver

    train_id, train_key = await put_dataset(settings, digits(10))
    test_id, test_key = await put_dataset(settings, digits(4))
    bad_id, bad_key = await put_dataset(settings, digits(2), badcase_ids=[str(_uuid.uuid4()), None])
    group = _uuid.uuid4()
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=_uuid.UUID(train_id), version=2, purpose="train", manifest_key=train_key, item_count=10,
        group_id=group))
    (train,) = (await mtt.get("/tasks", params={"kind": "train"})).json()
    assert train["status"] == "draft" and len(train["datasets"]) == 1  # no default code configured
    for _ in range(2):
        await deliver(settings, on_dataset_grouped, DatasetGrouped(
            dataset_id=_uuid.UUID(test_id), version=2, purpose="test", manifest_key=test_key, item_count=4,
            group_id=group))
    train = (await mtt.get(f"/tasks/{train['id']}")).json()
    assert [(d["dataset_id"], d["purpose"]) for d in train["datasets"]] == [(train_id, "train"), (test_id, "test")]
    await deliver(settings, on_dataset_grouped, DatasetGrouped(
        dataset_id=_uuid.UUID(bad_id), version=1, purpose="test", manifest_key=bad_key, item_count=2,
        is_badcase_test_set=True))
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=_uuid.uuid4(), name="digits", version="7", format="pt", object_key="x/model.pt"))
    tests = (await mtt.get("/tasks", params={"kind": "test"})).json()
    assert sorted(t["datasets"][0]["dataset_id"] for t in tests) == sorted([test_id, bad_id])
    assert all(t["origin"] == "dataset.grouped" and t["status"] == "draft" for t in tests)
    assert len(await outbox_events(settings, "task.created")) == 3


async def test_runs_whose_runner_went_silent_are_queued_again(mtt: httpx.AsyncClient, settings: Settings,
                                                              tmp_path: Path) -> None:
    from datetime import timedelta

    from mlife_shared.app import service_context
    from mlife_shared.db import Database, utcnow
    from mtt.app import SPEC
    from mtt.task.models import RunRequest, Task

    ds, key = await put_dataset(settings, digits(3))
    code = tmp_path / "code"
    code.mkdir()
    base = {"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
            "command": "python x.py", "run": True}
    ids = [(await mtt.post("/tasks", json=base)).json()["id"] for _ in range(3)]
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:  # as if runners took them: one silent, one cancelled, one alive
            for i, tid in enumerate(ids):
                t = await session.get(Task, _uuid(tid))
                t.status, t.runner_id = "running", f"r{i}"
                t.heartbeat_at = utcnow() - timedelta(seconds=settings.stale_after_seconds * (2 if i < 2 else 0))
                t.cancel_requested = i == 1
        (job,) = SPEC.jobs(service_context(SPEC, settings))
        async with db.transaction() as session:
            assert await job.run(session) == 2
        async with db.transaction() as session:
            from sqlalchemy import select

            requests = (await session.execute(select(RunRequest.task_id, RunRequest.attempt))).all()
    finally:
        await db.dispose()
    silent, cancelled, alive = [(await mtt.get(f"/tasks/{i}")).json() for i in ids]
    assert (silent["status"], silent["attempt"]) == ("queued", 2) and "lost its runner r0" in silent["error"]
    assert cancelled["status"] == "cancelled" and alive["status"] == "running"
    assert sorted((str(t), a) for t, a in requests) == sorted([(i, 1) for i in ids] + [(ids[0], 2)])


def _uuid(value: str):  # type: ignore[no-untyped-def]
    import uuid as _u

    return _u.UUID(value)


async def test_a_log_uploaded_to_a_task_that_never_ran_is_its_log(mtt: httpx.AsyncClient, settings: Settings) -> None:
    """Uploaded logs go to the current attempt, or attempt 1 before any run; reading without an attempt shows them."""
    ds, key = await put_dataset(settings, digits(20))
    task = (await mtt.post("/tasks", json={"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}]})).json()
    assert task["attempt"] == 0
    r = await mtt.post(f"/tasks/{task['id']}/logs", content=b"trained on my laptop\n")
    assert r.status_code == 201, r.text
    log = (await mtt.get(f"/tasks/{task['id']}/logs")).json()
    assert (log["attempt"], log["text"]) == (1, "trained on my laptop\n")
    assert (await mtt.get(f"/tasks/{task['id']}/logs", params={"attempt": 2})).json()["text"] == ""
