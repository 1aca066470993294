"""Runners: two runner processes share the work queue; cancel kills the whole process group; timeouts,
failures and a live log tail. Commands run in the bubblewrap sandbox: they see only their work dir (the test
reaches it on the host under `settings.work_root`) and their own pid namespace (the test finds their processes
on the host by a marker in the command line)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import httpx

from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.config import Settings
from tests.mtt.archives import zipped
from tests.mtt.onnx_models import linear_classifier
from tests.support.mtt import digits, put_dataset, task_in
from tests.support.outbox import outbox_events
from tests.support.waiting import wait_for

WAIT = """
import os, pathlib, sys, time
pathlib.Path("started").write_text(os.environ.get("MLIFE_DATASET_MANIFEST", ""))
print("waiting for the gate", flush=True)
while not pathlib.Path("go").exists():
    time.sleep(0.05)
print("through", flush=True)
"""

SPAWN = """
import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1] + "-child"])
pathlib.Path("child.started").write_text(str(child.pid))
print("child started", flush=True)
time.sleep(600 if os.environ["MLIFE_TASK_ATTEMPT"] == "1" else 0)
"""


def code_on_host(settings: Settings, task_id: str, attempt: int = 1) -> Path:
    """The command's cwd (its `code` folder) as the runner's machine sees it."""
    return settings.work_dir() / f"{task_id}-{attempt}" / "code"


def host_pids(marker: str) -> list[int]:
    """Live processes whose command line carries `marker` (pids as the host sees them)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def code_dir(tmp_path: Path, name: str, script: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "main.py").write_text(textwrap.dedent(script))
    return d


async def test_two_runners_share_the_queue(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                           tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(10))
    code = code_dir(tmp_path, "wait", WAIT)
    body = {"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
            "command": "python main.py", "run": True}
    ids = [(await mtt.post("/tasks", json=body)).json()["id"] for _ in range(2)]
    start_runner("runner-1")
    start_runner("runner-2")
    running = [await task_in(mtt, i, "running") for i in ids]
    # each runner takes one message at a time: both tasks run at once, so each runner has one
    assert sorted(t["runner_id"] for t in running) == ["runner-1", "runner-2"]
    await wait_for(lambda: _all_exist([code_on_host(settings, i) / "started" for i in ids]), "both commands started")
    manifest = Path((code_on_host(settings, ids[0]) / "started").read_text())
    assert manifest == Path(f"/mlife/work/data/{ds}.jsonl")  # resolved to local files, at the sandbox's path
    # live tail while it runs
    chunk = await wait_for(lambda: _log_has(mtt, ids[0], "waiting for the gate"), "live log")
    assert chunk["complete"] is False
    for i in ids:
        (code_on_host(settings, i) / "go").write_text("")
    for i in ids:
        assert (await task_in(mtt, i, "succeeded", "failed"))["status"] == "succeeded"
    tail = (await mtt.get(f"/tasks/{ids[0]}/logs", params={"offset": chunk["next_offset"]})).json()
    assert "through" in tail["text"] and "waiting for the gate" not in tail["text"] and tail["complete"]
    assert sorted(e["data"]["task_id"] for e in await outbox_events(settings, "task.finished")) == sorted(ids)


async def _all_exist(paths: list[Path]) -> bool:
    return all(p.exists() for p in paths)


async def _log_has(mtt: httpx.AsyncClient, task_id: str, text: str) -> dict | None:
    body = (await mtt.get(f"/tasks/{task_id}/logs")).json()
    return body if text in body["text"] else None


async def test_cancel_kills_the_process_group(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                              tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(5))
    marker = f"marker-{uuid.uuid4().hex}"
    code = code_dir(tmp_path, "spawn", SPAWN)
    task = (await mtt.post("/tasks", json={
        "kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
        "command": f"python main.py {marker}", "run": True})).json()
    start_runner("runner-c")
    await task_in(mtt, task["id"], "running")
    await wait_for(lambda: _all_exist([code_on_host(settings, task["id"]) / "child.started"]), "the child process")
    (child,) = host_pids(marker + "-child")
    r = await mtt.post(f"/tasks/{task['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = await task_in(mtt, task["id"], "cancelled", "failed", "succeeded")
    assert done["status"] == "cancelled"
    assert not alive(child)  # the grandchild died with the group
    failed = [e["data"] for e in await outbox_events(settings, "task.failed")]
    assert failed == [{"task_id": task["id"], "kind": "train", "reason": "cancelled"}]
    assert "stopping the process group" in (await mtt.get(f"/tasks/{task['id']}/logs")).json()["text"]


async def test_timeouts_failures_and_undeclared_preprocessing(mtt: httpx.AsyncClient, settings: Settings,
                                                              start_runner, tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(5))
    datasets = [{"dataset_id": ds, "manifest_key": key}]
    slow = code_dir(tmp_path, "slow", "import time\ntime.sleep(600)\n")
    bad = code_dir(tmp_path, "bad", "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    t1 = (await mtt.post("/tasks", json={"kind": "train", "datasets": datasets, "code_location": str(slow),
                                         "command": "python main.py", "timeout_seconds": 1, "run": True})).json()
    t2 = (await mtt.post("/tasks", json={"kind": "train", "datasets": datasets, "code_location": str(bad),
                                         "command": "python main.py", "run": True})).json()
    await make_store(settings).put("models/plain/model.onnx", iterate(linear_classifier()))
    t3 = (await mtt.post("/tasks", json={"kind": "test", "datasets": datasets, "run": True, "model": {
        "name": "plain", "version": "1", "object_key": "models/plain/model.onnx"}})).json()
    start_runner("runner-t")
    r1 = await task_in(mtt, t1["id"], "failed", "succeeded")
    assert r1["status"] == "failed" and "timed out" in r1["error"]
    r2 = await task_in(mtt, t2["id"], "failed", "succeeded")
    assert r2["status"] == "failed" and r2["exit_code"] == 3 and "code 3" in r2["error"]
    assert "about to fail" in (await mtt.get(f"/tasks/{t2['id']}/logs")).json()["text"]
    r3 = await task_in(mtt, t3["id"], "failed", "succeeded")
    assert r3["status"] == "failed" and "preprocessing" in r3["error"]
    reasons = {e["data"]["task_id"]: e["data"]["reason"] for e in await outbox_events(settings, "task.failed")}
    assert set(reasons) == {t1["id"], t2["id"], t3["id"]}
    assert await outbox_events(settings, "testing.completed") == []


def _tar_with_symlink() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    return buf.getvalue()


async def test_code_uploaded_as_an_archive(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                           tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(5))
    task = (await mtt.post("/tasks", json={"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                           "command": "python pkg/main.py"}))
    assert task.status_code == 201 and task.json()["status"] == "draft"  # the command waits for its code
    tid = task.json()["id"]
    for bad, needle in ((zipped({"../evil.py": b"x"}), "escaping"), (zipped({"/abs.py": b"x"}), "absolute"),
                        (_tar_with_symlink(), "not a regular file"), (b"#!/bin/sh\necho hi\n", ".zip or .tar.gz")):
        r = await mtt.post(f"/tasks/{tid}/code", content=bad)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
    assert (await mtt.get(f"/tasks/{tid}")).json()["code_location"] is None
    r = await mtt.post(f"/tasks/{tid}/code", content=zipped({
        "pkg/main.py": b"import helper\nhelper.hello()\n",
        "pkg/helper.py": b"def hello():\n    print('hello from the archive')\n"}))
    assert r.status_code == 201 and r.json()["code_location"].startswith("store:mtt/tasks/")
    assert r.json()["status"] == "ready"  # its command was there: the code was all it needed
    assert (await mtt.post(f"/tasks/{tid}/run")).status_code == 202
    start_runner("runner-z")
    done = await task_in(mtt, tid, "succeeded", "failed")
    log = (await mtt.get(f"/tasks/{tid}/logs")).json()["text"]
    assert done["status"] == "succeeded", log
    assert "hello from the archive" in log and "code: 2 files" in log


async def test_a_stopping_runner_hands_its_run_back(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                                    tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(5))
    marker = f"marker-{uuid.uuid4().hex}"
    code = code_dir(tmp_path, "spawn", SPAWN)  # the first attempt waits; the second ends at once
    task = (await mtt.post("/tasks", json={
        "kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
        "command": f"python main.py {marker}", "run": True})).json()
    settings.keep_work_dirs = True
    a = start_runner("runner-stopping")
    first = await task_in(mtt, task["id"], "running")
    assert first["runner_id"] == "runner-stopping"
    await wait_for(lambda: _all_exist([code_on_host(settings, task["id"], 1) / "child.started"]),
                   "the first attempt's child")
    (child,) = host_pids(marker + "-child")
    a.stop_event.set()
    await a.task
    assert not alive(child)  # no orphan left by the stopped runner
    requeued = (await mtt.get(f"/tasks/{task['id']}")).json()
    assert requeued["status"] == "queued" and requeued["attempt"] == 2  # a new attempt, its own log
    start_runner("runner-next")
    done = await task_in(mtt, task["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and done["runner_id"] == "runner-next" and done["attempt"] == 2
    # the second attempt's command left its child behind: it was killed with the sandbox, not waited for
    assert (code_on_host(settings, task["id"], 2) / "child.started").exists() and host_pids(marker + "-child") == []
    first_log = (await mtt.get(f"/tasks/{task['id']}/logs", params={"attempt": 1})).json()
    assert "runner-stopping" in first_log["text"] and "runner-next" not in first_log["text"] and first_log["complete"]


OWN_TESTING = """
from mlife.tracking import dataset_items, log_metric, save_outcomes
items = dataset_items()
lines = [{"sample_id": it["md5"], "data_ref": it["md5"], "ground_truth": it["label"],
          "prediction": "7", "correct": it["label"] == "7"} for it in items]
save_outcomes(lines)
log_metric("my_score", 0.5)
print("tested", len(lines), flush=True)
"""


async def test_own_testing_code_reports_outcomes(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                                 tmp_path: Path) -> None:
    items = digits(12)
    ds, key = await put_dataset(settings, items)
    await make_store(settings).put("models/plain/model.onnx", iterate(linear_classifier()))
    code = code_dir(tmp_path, "own", OWN_TESTING)
    task = (await mtt.post("/tasks", json={
        "kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
        "command": "python main.py", "function": "digits", "run": True,
        "model": {"name": "plain", "version": "3", "object_key": "models/plain/model.onnx"}})).json()
    start_runner("runner-own")
    done = await task_in(mtt, task["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    sevens = sum(1 for _, label in items if label == "7")
    assert done["metrics"]["my_score"] == 0.5 and done["metrics"]["accuracy"] == sevens / len(items)
    (tc,) = [e["data"] for e in await outbox_events(settings, "testing.completed")]
    assert tc["model_version"] == "3" and tc["metrics"]["errors"] == len(items) - sevens
    report = (await mtt.get(f"/tasks/{task['id']}/report")).json()
    assert sum(map(sum, report["confusion"])) == len(items)
    assert all(p["predicted"] == "7" for p in report["most_confused"])
