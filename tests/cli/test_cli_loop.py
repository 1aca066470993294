"""The loop from the command line (issue 12): a task with its code from a relative folder in one call, badcase
import with the fields of `badcase add` and a non-zero exit for failed rows, serving feedback, add to test data,
the gate preview, rollback; and a command line that fails with a message (a missing file) or stops quietly (a
closed pipe), never with a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlife.client import Client, md5_of
from tests.support.cli import mlife, ok
from tests.support.stack import Stack


def until(what: str, probe: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def train_dataset(stack: Stack, home: Path) -> str:
    """A one-split training dataset of two small files (DAM: upload, document, group items)."""
    folder = home / "data"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.txt").write_text(f"item {i} {uuid.uuid4().hex}")
    ok(mlife(stack, home, "data", "upload", str(folder), "--json", role="engineer"))
    doc = home / "doc.csv"
    doc.write_text("md5,annotation\n" + "".join(f"{md5_of(folder / f'{i}.txt')},{i}\n" for i in range(2)))
    d = ok(mlife(stack, home, "document", "import", str(doc), "--name", f"doc-{uuid.uuid4().hex[:6]}", "--json",
                 role="engineer"))
    grouped = ok(mlife(stack, home, "dataset", "group", "--name", f"set-{uuid.uuid4().hex[:6]}", "--document",
                       d["id"], "--split", "train=1", "--json", role="engineer"))
    return str(grouped["datasets"][0]["id"])


def live_deployment(stack: Stack, home: Path, endpoint: str, version_id: str) -> dict[str, Any]:
    out = ok(mlife(stack, home, "deploy", endpoint, "--version", version_id, "--override-reason", "cli test",
                   "--json", role="maintainer"))
    with Client(stack.url, stack.tokens["viewer"]) as c:
        status = until(f"deployment {out['id']} to leave requested/deploying", lambda: (
            s if (s := c.request("GET", f"/api/msm/deployments/{out['id']}")["status"]) not in
            ("requested", "deploying", "awaiting_tests") else None), timeout=120)
    assert status == "live", status
    return out


async def test_task_create_uploads_a_relative_code_folder_with_command_and_params(stack: Stack,
                                                                                    tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "lib").mkdir(parents=True)
    (project / "src" / "lib" / "__init__.py").write_text("")
    (project / "src" / "lib" / "words.py").write_text("GREETING = 'hello from a relative folder'\n")
    (project / "src" / "train.py").write_text(
        "import json, os\nfrom lib.words import GREETING\n"
        "params = json.loads(os.environ['MLIFE_TASK_PARAMS'])\n"
        "print(GREETING, params['epochs'], params['options']['mode'])\n")
    (project / "src" / "__pycache__").mkdir()
    (project / "src" / "__pycache__" / "junk.pyc").write_bytes(b"\0" * 10)
    dataset = train_dataset(stack, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIFE_")}
    env.update(HOME=str(tmp_path), MLIFE_URL=stack.url, MLIFE_TOKEN=stack.tokens["engineer"])
    r = subprocess.run([sys.executable, "-m", "mlife.cli", "task", "create", "--kind", "train", "--dataset", dataset,
                        "--code", "src", "--command", "python train.py", "--function", "cli-digits",
                        "--param", "epochs=3", "--param", 'options={"mode": "L"}', "--run", "--json"],
                       cwd=project, env=env, capture_output=True, text=True, timeout=120)
    task = ok(r)
    assert task["code_location"].startswith("store:"), task  # uploaded, not a path on the server
    assert task["command"] == "python train.py" and task["function"] == "cli-digits"
    assert task["params"] == {"epochs": 3, "options": {"mode": "L"}}
    assert task["status"] in ("queued", "running", "succeeded"), task
    with Client(stack.url, stack.tokens["viewer"]) as c:
        status = until("the task to end", lambda: (s if (s := c.task(task["id"])["status"]) in
                                                   ("succeeded", "failed", "cancelled") else None), timeout=180)
    logs = mlife(stack, tmp_path, "task", "logs", task["id"], role="viewer")
    assert status == "succeeded", logs.stdout
    assert "hello from a relative folder 3 L" in logs.stdout
    listed = ok(mlife(stack, tmp_path, "task", "list", "--function", "cli-digits", "--kind", "train", "--json",
                      role="viewer"))
    assert task["id"] in [t["id"] for t in listed] and {t["function"] for t in listed} == {"cli-digits"}


async def test_task_create_without_a_command_takes_code_too(stack: Stack, tmp_path: Path) -> None:
    """The SDK's one call: code and no command yet (a draft), then nothing else needed to see the code kept."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "run.py").write_text("print('x')\n")
    dataset = train_dataset(stack, tmp_path)
    with Client(stack.url, stack.tokens["engineer"]) as c:
        task = c.create_task("train", [dataset], code_dir=tmp_path / "code", name="code only")
        assert task["code_location"].startswith("store:") and task["status"] == "draft", task
        task = c.request("PATCH", f"/api/mtt/tasks/{task['id']}", json={"command": "python run.py"})
    assert task["status"] == "ready", task


async def test_badcase_import_takes_the_fields_of_add_and_exits_nonzero_on_failed_rows(stack: Stack,
                                                                                       tmp_path: Path) -> None:
    fn = f"cli-{uuid.uuid4().hex[:6]}"
    task_id, deployment_id, version_id = (str(uuid.uuid4()) for _ in range(3))
    added = ok(mlife(stack, tmp_path, "badcase", "add", "--function", fn, "--ground-truth", "7", "--prediction", "1",
                     "--data", "md5:" + "a" * 32, "--data", "url:https://example.com/x.png", "--task-id", task_id,
                     "--deployment-id", deployment_id, "--model-version-id", version_id, "--model-name", "digits",
                     "--model-version", "3", "--json"))
    assert [d["kind"] for d in added["data"]] == ["md5", "url"]
    assert (added["task_id"], added["deployment_id"], added["model_version_id"]) == (task_id, deployment_id,
                                                                                       version_id)
    tabular = ok(mlife(stack, tmp_path, "badcase", "add", "--function", fn, "--ground-truth", "5",
                       "--features", '{"alcohol": 13.2, "ash": 2.1}', "--json"))
    assert tabular["features"] == {"alcohol": 13.2, "ash": 2.1}
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [
        {"function": fn, "ground_truth": "8", "prediction": "3", "data": [{"kind": "key", "value": "dam/x/1.png"}],
         "task_id": task_id, "model_version_id": version_id, "model_name": "digits", "model_version": "3"},
        {"function": fn, "ground_truth": "6", "features": {"alcohol": 12.0, "ash": 1.9},
         "deployment_id": deployment_id},
        {"function": fn, "ground_truth": "6", "data": [{"kind": "md5", "value": "not-hex"}]},
    ]) + "\n")
    r = mlife(stack, tmp_path, "badcase", "import", str(rows))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 rows: 2 created, 0 merged, 1 failed" in r.stdout
    assert "row 3 (line 3)" in r.stderr and "md5" in r.stderr and "Traceback" not in r.stderr
    by_task = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--task-id", task_id, "--json"))
    assert sorted(b["ground_truth"] for b in by_task) == ["7", "8"]
    by_deployment = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--deployment-id", deployment_id,
                             "--json"))
    assert sorted(json.dumps(b["features"]) for b in by_deployment) == sorted(
        json.dumps(f) for f in [None, {"alcohol": 12.0, "ash": 1.9}])
    table = tmp_path / "rows.csv"
    table.write_text("function,data,ground_truth,task_id,features\n"
                     f"{fn},md5:{'b' * 32};url:https://example.com/y.png,2,{task_id},\n"
                     f'{fn},,4,,"{{""alcohol"": 11.5}}"\n'
                     f"{fn},md5:xyz,4,,\n")
    r = mlife(stack, tmp_path, "badcase", "import", str(table), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["created"] == 2, r.stdout + r.stderr
    assert [e["row"] for e in json.loads(r.stdout)["errors"]] == [3]
    by_task = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--task-id", task_id, "--json"))
    assert sorted(b["ground_truth"] for b in by_task) == ["2", "7", "8"]
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"function": fn, "ground_truth": "9", "prediction": "4"}) + "\n")
    assert ok(mlife(stack, tmp_path, "badcase", "import", str(clean), "--json"))["created"] == 1


async def test_feedback_add_to_test_data_gate_preview_and_rollback(stack: Stack, tmp_path: Path) -> None:
    import numpy as np

    from tests.msm.onnx_models import identity_classifier

    name = f"cli-loop-{uuid.uuid4().hex[:6]}"
    fn = f"fn-{name}"
    with Client(stack.url, stack.tokens["engineer"]) as c:
        v1 = c.request("POST", f"/api/msm/models/{name}/versions", content=identity_classifier(4),
                       headers={"content-type": "application/octet-stream"})
        v2 = c.request("POST", f"/api/msm/models/{name}/versions", content=identity_classifier(4),
                       headers={"content-type": "application/octet-stream"})
    ok(mlife(stack, tmp_path, "model", "set-function", name, fn, "--json", role="engineer"))

    preview = mlife(stack, tmp_path, "gate", "preview", name, v1["version"], "--json", role="viewer")
    assert preview.returncode in (0, 3), preview.stdout + preview.stderr  # 3: it would block
    verdict = json.loads(preview.stdout)
    assert verdict["model_version_id"] == v1["id"] and verdict["passed"] is (preview.returncode == 0)
    assert isinstance(verdict["reasons"], list)
    human = mlife(stack, tmp_path, "gate", "preview", name, v1["id"], role="viewer")
    assert f"{name} v{v1['version']}: " in human.stdout, human.stdout + human.stderr
    unknown = mlife(stack, tmp_path, "gate", "preview", name, "99", role="viewer")
    assert unknown.returncode == 2 and "has no version or alias '99'" in unknown.stderr

    endpoint = f"cli-{uuid.uuid4().hex[:6]}"
    first = live_deployment(stack, tmp_path, endpoint, v1["id"])
    answer = ok(mlife(stack, tmp_path, "predict", endpoint, "--input", '{"x": [0, 0, 1, 0]}', "--json",
                      role="viewer"))
    fed = ok(mlife(stack, tmp_path, "feedback", endpoint, "--inputs", '{"x": [0, 0, 1, 0]}', "--correct-label", "3",
                   "--prediction", "2", "--prediction-id", answer["prediction_id"], "--json"))
    assert fed["deployment_id"] == first["id"] and fed["model_name"] == name
    sample = tmp_path / "sample.npy"
    np.save(sample, np.array([0, 1, 0, 0], dtype=np.float32))
    from_file = mlife(stack, tmp_path, "feedback", endpoint, "--input-file", str(sample), "--correct-label", "0",
                      "--prediction", "1")
    assert from_file.returncode == 0 and "BAM files it as a badcase" in from_file.stdout, from_file.stderr
    with Client(stack.url, stack.tokens["viewer"]) as c:
        filed = until("BAM filing both feedback reports", lambda: (
            b if len(b := c.list_badcases(function=fn, source="serving")["items"]) == 2 else None))
    assert {b["ground_truth"] for b in filed} == {"3", "0"}
    assert {b["deployment_id"] for b in filed} == {first["id"]}

    manual = ok(mlife(stack, tmp_path, "badcase", "add", "--function", fn, "--ground-truth", "1", "--json"))
    by_id = ok(mlife(stack, tmp_path, "badcase", "add-to-test-data", filed[0]["id"], manual["id"], "--json"))
    assert by_id["added"] == 1 and [s["id"] for s in by_id["skipped"]] == [manual["id"]]  # no data to add
    by_filter = mlife(stack, tmp_path, "badcase", "add-to-test-data", "--function", fn, "--source", "serving")
    assert by_filter.returncode == 0 and "2 badcases sent" in by_filter.stdout, by_filter.stdout + by_filter.stderr
    neither = mlife(stack, tmp_path, "badcase", "add-to-test-data")
    assert neither.returncode == 2 and "give badcase ids" in neither.stderr

    second = live_deployment(stack, tmp_path, endpoint, v2["id"])
    rolled = ok(mlife(stack, tmp_path, "deploy", "rollback", endpoint, "--reason", "v2 is worse", "--json",
                      role="maintainer"))
    assert rolled["id"] == first["id"] and rolled["status"] == "live"
    again = mlife(stack, tmp_path, "deploy", "rollback", second["id"], "--reason", "twice", role="maintainer")
    assert again.returncode == 2 and "only a live deployment can be rolled back" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    nothing = mlife(stack, tmp_path, "deploy", "rollback", f"no-such-{endpoint}", "--reason", "x", role="maintainer")
    assert nothing.returncode == 2 and "no deployment named" in nothing.stderr


async def test_a_missing_file_is_a_message_not_a_traceback(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    commands = [
        ("badcase", "import", f"{missing}.csv"),
        ("badcase", "add", "--function", "f", "--file", f"{missing}.png"),
        ("badcase", "add", "--function", "f", "--features", f"@{missing}.json"),
        ("data", "upload", str(missing)),
        ("document", "import", f"{missing}.csv", "--name", "d"),
        ("task", "create", "--kind", "train", "--dataset", str(uuid.uuid4()), "--code", str(missing)),
        ("predict", "some-endpoint", "--input", f"@{missing}.json"),
        ("feedback", "some-endpoint", "--input-file", f"{missing}.npy", "--correct-label", "1"),
    ]
    for args in commands:
        r = mlife(stack, tmp_path, *args, role="engineer")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        assert str(missing) in r.stderr and ("No such file" in r.stderr or "no such folder" in r.stderr), r.stderr


async def test_a_closed_pipe_ends_the_command_quietly(stack: Stack, tmp_path: Path) -> None:
    fn = f"cli-pipe-{uuid.uuid4().hex[:6]}"
    rows = tmp_path / "many.jsonl"
    rows.write_text("".join(json.dumps({"function": fn, "prediction": str(i), "description": f"row {i} " + "x" * 80})
                            + "\n" for i in range(1200)))
    assert ok(mlife(stack, tmp_path, "badcase", "import", str(rows), "--json"))["created"] == 1200
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIFE_")}
    env.update(HOME=str(tmp_path), MLIFE_URL=stack.url, MLIFE_TOKEN=stack.tokens["viewer"])
    # A table of 1200 rows is far more than a pipe holds: `head` leaves while the CLI is still writing.
    writer = subprocess.Popen([sys.executable, "-m", "mlife.cli", "badcase", "list", "--function", fn, "--all"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()  # `head` holds the only reading end: when it leaves, the pipe is closed
    first_line, _ = head.communicate(timeout=120)
    err = writer.stderr.read().decode()
    writer.wait(60)
    assert first_line.decode().split() == ["id", "function", "status", "severity", "priority", "frequency",
                                           "description"]
    assert err == "", err  # no traceback, no "Exception ignored … BrokenPipeError"
    assert writer.returncode == 141
