"""The `mlife` command line and the SDK against the real platform (gateway + service processes):
each command runs as its own process, reads MLIFE_URL / MLIFE_TOKEN or the config `mlife login`
wrote, and prints JSON with --json."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from mlife.client import Client, MLifeAPIError, md5_of
from tests.support.cli import mlife, ok
from tests.support.stack import PASSWORD, Stack


def on_a_terminal(stack: Stack, home: Path, *args: str, role: str = "tester") -> subprocess.CompletedProcess[str]:
    """`mlife` with its standard error on a pseudo-terminal (standard output still a pipe)."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIFE_")}
    env.update(HOME=str(home), MLIFE_URL=stack.url, MLIFE_TOKEN=stack.tokens[role])
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mlife.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    err = b""
    while True:  # drained while it runs: a full terminal buffer would block it
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait(120)
    os.close(leader)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode(errors="replace"))


async def test_login_keeps_a_private_token_and_whoami_uses_it(stack: Stack, tmp_path: Path) -> None:
    r = mlife(stack, tmp_path, "login", "--username", "engineer-user", "--password-stdin", "--json",
              role=None, stdin=PASSWORD + "\n")
    out = ok(r)
    config = Path(out["config"])
    assert config == tmp_path / ".config" / "mlife" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["url"] == stack.url and saved["token"].startswith("mlf_")
    me = ok(mlife(stack, tmp_path, "whoami", "--json", role=None))
    assert me["username"] == "engineer-user" and me["role"] == "engineer"
    bad = mlife(stack, tmp_path, "login", "--username", "engineer-user", "--password-stdin", role=None,
                stdin="wrong password\n")
    assert bad.returncode == 2 and "InvalidCredentials" in bad.stderr


async def test_badcase_add_merge_list_stats(stack: Stack, tmp_path: Path) -> None:
    fn = f"cli-{uuid.uuid4().hex[:6]}"
    args = ("badcase", "add", "--function", fn, "--prediction", "cat", "--ground-truth", "dog",
            "--description", "from the terminal", "--tag", "cli", "--severity", "high", "--json")
    first = ok(mlife(stack, tmp_path, *args))
    assert first["function"] == fn and first["reporter"] == "tester-user" and first["tags"] == ["cli"]
    again = ok(mlife(stack, tmp_path, *args))
    assert again["merged_into"] == first["id"] and again["frequency"] == 2
    ok(mlife(stack, tmp_path, "badcase", "add", "--function", fn, "--prediction", "cow", "--json"))
    listed = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--json", role="viewer"))
    assert {b["prediction"] for b in listed} == {"cat", "cow"}
    filtered = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--severity", "high", "--json"))
    assert [b["id"] for b in filtered] == [first["id"]]
    stats = ok(mlife(stack, tmp_path, "badcase", "stats", "--function", fn, "--group-by", "prediction", "--json"))
    assert stats["total"] == 2 and {g["key"]["prediction"]: g["count"] for g in stats["groups"]} == {"cat": 1, "cow": 1}
    weekly = ok(mlife(stack, tmp_path, "badcase", "stats", "--weekly", "--function", fn, "--json"))
    assert sum(p["reported"] for p in weekly["series"]) == 2
    human = mlife(stack, tmp_path, "badcase", "list", "--function", fn)
    assert human.returncode == 0 and fn in human.stdout and "priority" in human.stdout


async def test_badcase_add_with_a_file_and_import(stack: Stack, tmp_path: Path) -> None:
    fn = f"cli-{uuid.uuid4().hex[:6]}"
    note = tmp_path / "note.txt"
    note.write_text("the model said cat " * 20)
    b = ok(mlife(stack, tmp_path, "badcase", "add", "--function", fn, "--file", str(note), "--json"))
    assert b["media_type"] == "text" and b["data_md5"] == md5_of(note)
    rows = tmp_path / "batch.csv"
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["function", "prediction", "ground_truth", "tags"])
        w.writerow([fn, "a", "b", "x;y"])
        w.writerow([fn, "c", "d", ""])
        w.writerow(["", "e", "f", ""])  # invalid: no function
    partly = mlife(stack, tmp_path, "badcase", "import", str(rows), "--json")
    assert partly.returncode == 1, partly.stdout + partly.stderr  # some rows failed: not a success
    result = json.loads(partly.stdout)
    assert (result["rows"], result["created"], result["failed"]) == (3, 2, 1)
    assert [e["row"] for e in result["errors"]] == [3] and "function" in result["errors"][0]["error"]
    listed = ok(mlife(stack, tmp_path, "badcase", "list", "--function", fn, "--all", "--json"))
    assert {b["prediction"] for b in listed} >= {"a", "c"}
    assert len(listed) == 3


async def test_errors_are_a_nonzero_exit_with_the_api_error(stack: Stack, tmp_path: Path) -> None:
    r = mlife(stack, tmp_path, "badcase", "add", "--function", "x" * 300, "--json")
    assert r.returncode == 2
    err = json.loads(r.stdout)
    assert err["status"] == 422 and err["error"] == "RequestValidationError"
    forbidden = mlife(stack, tmp_path, "badcase", "add", "--function", "f", role="viewer")
    assert forbidden.returncode == 2 and "403" in forbidden.stderr and "tester" in forbidden.stderr
    nobody = mlife(stack, tmp_path, "badcase", "list", role=None)
    assert nobody.returncode == 2 and "401" in nobody.stderr
    unreachable = subprocess.run([sys.executable, "-m", "mlife.cli", "badcase", "list", "--url", "http://127.0.0.1:9",
                                  "--token", "mlf_x"], capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert unreachable.returncode == 2 and "cannot reach MLife" in unreachable.stderr


async def test_data_upload_dir_skips_known_files(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    marker = uuid.uuid4().hex
    (folder / "a.txt").write_text(f"a {marker}")
    (folder / "sub" / "b.txt").write_text(f"b {marker}")
    (folder / "sub" / "a-copy.txt").write_text(f"a {marker}")  # same content as a.txt
    if "dam" not in stack.up:
        r = mlife(stack, tmp_path, "data", "upload", str(folder), "--json")
        assert r.returncode == 2 and "503" in r.stdout
        return
    first = on_a_terminal(stack, tmp_path, "data", "upload", str(folder), "--workers", "3")
    assert first.returncode == 0, first.stderr
    assert "3 files: 2 uploaded, 1 already stored" in first.stdout
    assert "[##############################] 100.0%" in first.stderr, "a progress bar on a terminal"
    (folder / "c.txt").write_text(f"c {marker}")
    piped = mlife(stack, tmp_path, "data", "upload", str(folder))
    assert piped.returncode == 0 and "1 uploaded, 3 already stored" in piped.stdout, piped.stdout + piped.stderr
    assert piped.stderr == "", "no progress bar into a pipe or a log"
    again = ok(mlife(stack, tmp_path, "data", "upload", str(folder), "--json"))
    assert again["uploaded"] == 0 and again["skipped"] == 4
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("viewer")) as c:
        check = (await c.post("/api/dam/files/check", json={"md5s": [md5_of(folder / "a.txt")]})).json()
    assert check["existing"] == [md5_of(folder / "a.txt")]


async def test_document_import_and_export(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text(f"item {i} {uuid.uuid4().hex}")
    rows = tmp_path / "doc.csv"
    rows.write_text("md5,annotation,camera\n" + "".join(f"{md5_of(folder / f'{i}.txt')},{'cat' if i % 2 else 'dog'},c{i}\n"
                                                       for i in range(4)))
    if "dam" not in stack.up:
        r = mlife(stack, tmp_path, "document", "import", str(rows), "--name", "d", "--json", role="engineer")
        assert r.returncode == 2
        return
    ok(mlife(stack, tmp_path, "data", "upload", str(folder), "--json"))  # DAM wants the files first
    denied = mlife(stack, tmp_path, "document", "import", str(rows), "--name", "d", "--json", role="tester")
    assert denied.returncode == 2 and json.loads(denied.stdout)["status"] == 403
    d = ok(mlife(stack, tmp_path, "document", "import", str(rows), "--name", f"doc-{uuid.uuid4().hex[:6]}",
                 "--json", role="engineer"))
    out = tmp_path / "export.csv"
    ok(mlife(stack, tmp_path, "document", "export", d["id"], "--format", "csv", "-o", str(out), "--json",
             role="viewer"))
    exported = list(csv.DictReader(io.StringIO(out.read_text())))
    original = list(csv.DictReader(io.StringIO(rows.read_text())))
    assert [r["md5"] for r in exported] == [r["md5"] for r in original]
    assert [r["annotation"] for r in exported] == [r["annotation"] for r in original]
    listed = ok(mlife(stack, tmp_path, "document", "list", "--json", role="viewer"))
    assert d["id"] in [x["id"] for x in listed]
    grouped = ok(mlife(stack, tmp_path, "dataset", "group", "--name", f"set-{d['id'][:6]}", "--document", d["id"],
                       "--split", "train=0.5,test=0.5", "--json", role="engineer"))
    sizes = {x["purpose"]: x.get("item_count") for x in grouped["datasets"]}
    assert set(sizes) == {"train", "test"} and sum(sizes.values()) == 4, grouped


async def test_model_alias_and_deploy_through_the_gate(stack: Stack, tmp_path: Path) -> None:
    if "msm" not in stack.up:
        r = mlife(stack, tmp_path, "model", "list", "--json", role="viewer")
        assert r.returncode == 2
        return
    from tests.msm.onnx_models import identity_classifier

    name = f"cli-model-{uuid.uuid4().hex[:6]}"
    with Client(stack.url, stack.tokens["engineer"]) as c:
        v = c.request("POST", f"/api/msm/models/{name}/versions", content=identity_classifier(4),
                      headers={"content-type": "application/octet-stream"})
    models = ok(mlife(stack, tmp_path, "model", "list", "--json", role="viewer"))
    assert name in [m["name"] for m in models]
    declared = ok(mlife(stack, tmp_path, "model", "set-function", name, f"fn-{name}", "--json", role="engineer"))
    assert declared["function"] == f"fn-{name}"  # a model declares its function before it is deployed
    ok(mlife(stack, tmp_path, "model", "alias", name, "staging", v["version"], "--json", role="engineer"))
    denied = mlife(stack, tmp_path, "model", "alias", name, "production", v["version"], "--json", role="engineer")
    assert denied.returncode == 2 and json.loads(denied.stdout)["status"] == 403  # MSM: production is maintainers'
    ok(mlife(stack, tmp_path, "model", "alias", name, "production", "staging", "--json", role="maintainer"))
    with Client(stack.url, stack.tokens["viewer"]) as c:
        detail = c.model(name)
    assert sorted((a["alias"], a["version_id"]) for a in detail["aliases"]) == [("production", v["id"]),
                                                                                ("staging", v["id"])]
    endpoint = f"cli-{uuid.uuid4().hex[:6]}"
    blocked = mlife(stack, tmp_path, "deploy", endpoint, "--version", v["id"], "--json", role="engineer")
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert json.loads(blocked.stdout)["blocked"] is True
    over = mlife(stack, tmp_path, "deploy", f"{endpoint}-2", "--version", v["id"], "--override-reason",
                 "cli smoke test", "--json", role="maintainer")
    out = ok(over)
    assert out["overridden"] is True and out["override_by"] == "maintainer-user"
    # MSM's worker brings the deployment up; then `mlife predict` calls it.
    with Client(stack.url, stack.tokens["viewer"]) as c:
        for _ in range(120):
            status = c.request("GET", f"/api/msm/deployments/{out['id']}")["status"]
            if status not in ("requested", "deploying"):
                break
            time.sleep(0.5)
    assert status == "live", status
    pred = ok(mlife(stack, tmp_path, "predict", f"{endpoint}-2", "--input", '{"x": [0, 0, 1, 0]}', "--json",
                    role="viewer"))
    probs = pred["outputs"]["probs"]
    assert max(range(4), key=lambda i: probs[i]) == 2, probs


async def test_task_list(stack: Stack, tmp_path: Path) -> None:
    if "mtt" not in stack.up:
        assert mlife(stack, tmp_path, "task", "list", "--json", role="viewer").returncode == 2
        return
    assert isinstance(ok(mlife(stack, tmp_path, "task", "list", "--json", role="viewer")), list)
    bad = mlife(stack, tmp_path, "task", "create", "--kind", "test", "--dataset", "not-a-uuid", "--json",
                role="engineer")
    assert bad.returncode == 2 and json.loads(bad.stdout)["status"] == 422


def test_sdk_error_type(stack: Stack) -> None:
    with Client(stack.url, "mlf_wrong") as c:
        try:
            c.me()
        except MLifeAPIError as exc:
            assert exc.status == 401 and exc.error == "InvalidToken"
        else:
            raise AssertionError("a wrong token must raise")


async def test_task_create_run_logs_report_end_to_end(stack: Stack, tmp_path: Path) -> None:
    """Data → document → dataset (DAM) → model (MSM) → testing task with the built-in evaluator (MTT),
    all from the command line; MTT learns about the model from MSM's event."""
    if not {"dam", "mtt", "msm"} <= set(stack.up):
        assert mlife(stack, tmp_path, "task", "list", "--json", role="viewer").returncode == 2
        return
    from PIL import Image

    from tests.msm.onnx_models import identity_classifier

    folder = tmp_path / "px"
    folder.mkdir()
    for i in range(4):  # 2x2 grey images lighting pixel i: the identity model predicts class i
        img = Image.new("L", (2, 2), 0)
        img.putpixel((i % 2, i // 2), 255)
        img.putpixel(((i + 1) % 2, (i + 1) % 4 // 2), i)  # unique bytes per run of this test
        img.save(folder / f"{i}.png")
    ok(mlife(stack, tmp_path, "data", "upload", str(folder), "--json", role="engineer"))
    doc = tmp_path / "px.csv"
    doc.write_text("md5,annotation\n" + "".join(f"{md5_of(folder / f'{i}.png')},{i}\n" for i in range(4)))
    d = ok(mlife(stack, tmp_path, "document", "import", str(doc), "--name", f"px-{uuid.uuid4().hex[:6]}", "--json",
                 role="engineer"))
    ds = ok(mlife(stack, tmp_path, "dataset", "group", "--name", f"px-{uuid.uuid4().hex[:6]}", "--document", d["id"],
                  "--split", "test=1", "--json", role="engineer"))["datasets"][0]
    name = f"px-model-{uuid.uuid4().hex[:6]}"
    with Client(stack.url, stack.tokens["engineer"]) as c:
        c.request("POST", f"/api/msm/models/{name}/versions", content=identity_classifier(4),
                  headers={"content-type": "application/octet-stream"})
    preprocess = json.dumps({"size": [2, 2], "mode": "L", "layout": "flat", "classes": ["0", "1", "2", "3"]})
    for _ in range(60):  # until MTT has seen model.registered
        r = mlife(stack, tmp_path, "task", "create", "--kind", "test", "--dataset", ds["id"], "--model-name", name,
                  "--param", f"preprocess={preprocess}", "--json", role="engineer")
        if r.returncode == 0:
            break
        assert "known to MTT" in r.stdout, r.stdout
        time.sleep(0.5)
    task = ok(r)
    ok(mlife(stack, tmp_path, "task", "run", task["id"], "--json", role="engineer"))
    with Client(stack.url, stack.tokens["viewer"]) as c:
        for _ in range(180):
            status = c.task(task["id"])["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
    logs = mlife(stack, tmp_path, "task", "logs", task["id"], "--follow", role="viewer")
    assert logs.returncode == 0 and "[mlife] succeeded" in logs.stdout, f"{status}: {logs.stdout} {logs.stderr}"
    report = ok(mlife(stack, tmp_path, "task", "report", task["id"], "--json", role="viewer"))
    assert report["status"] == "succeeded" and report["metrics"]["accuracy"] == 1.0
    assert report["confusion"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    listed = ok(mlife(stack, tmp_path, "task", "list", "--json", role="viewer"))
    assert task["id"] in [t["id"] for t in listed]


async def test_dead_letters_are_listed_and_redriven_from_the_command_line(stack: Stack, tmp_path: Path) -> None:
    """A malformed event BAM dead-letters: `mlife dead-letters list` shows it; re-driving it (by id, or all of its
    consumer's) says why it can never be applied and exits non-zero; only maintainers may re-drive."""
    import nats

    from tests.support.ui import eventually

    marker = uuid.uuid4().hex
    nc = await nats.connect(stack.nats.url)  # type: ignore[attr-defined]
    try:
        await nc.jetstream().publish("serving.feedback", f"not an event {marker}".encode(), headers={"Nats-Msg-Id": marker})
    finally:
        await nc.close()

    async def _listed() -> dict[str, object] | None:
        rows = ok(mlife(stack, tmp_path, "dead-letters", "list", "bam", "--state", "pending", "--json", role="viewer"))
        return next((r for r in rows if marker in r["payload"]), None)  # type: ignore[union-attr]

    letter = await eventually(_listed, "BAM dead-letters the malformed event")
    denied = mlife(stack, tmp_path, "dead-letters", "redrive", "bam", str(letter["id"]), role="engineer")
    assert denied.returncode == 2 and "maintainer" in denied.stderr
    one = mlife(stack, tmp_path, "dead-letters", "redrive", "bam", str(letter["id"]), role="maintainer")
    assert one.returncode == 2 and "can never be applied" in one.stderr
    everything = mlife(stack, tmp_path, "dead-letters", "redrive", "bam", "--consumer", str(letter["consumer"]),
                       "--json", role="maintainer")
    assert everything.returncode == 1, everything.stderr
    assert {r["id"]: r["outcome"] for r in json.loads(everything.stdout)}[letter["id"]] == "failed"
    table = mlife(stack, tmp_path, "dead-letters", "list", "bam", "--consumer", str(letter["consumer"]), role="viewer")
    assert table.returncode == 0 and str(letter["id"]) in table.stdout
