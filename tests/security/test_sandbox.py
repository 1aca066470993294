"""Issue 13, "user code is sandboxed and holds no platform secret": through MTT's real API and a real runner on
PostgreSQL, NATS, S3 and MLflow, a task's code that looks for secrets the way an attacker would gets nothing;
a machine without bubblewrap refuses user code unless an operator opts out; code_location is bounded by the
configured roots (links included); limits end a run as a failed attempt; the runner needs no identity key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from mtt.config import Settings
from mtt.runner.sandbox import python_prefixes
from tests.support.auth import SECRET
from tests.support.mtt import ROOT, digits, put_dataset, task_in
from tests.support.processes import free_port
from tests.support.waiting import wait_for

PROBE = r'''
import json, os, pathlib, socket, subprocess, sys
p = json.loads(os.environ["MLIFE_TASK_PARAMS"])
report = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "env": dict(os.environ),
          "proc": {}, "reads": {}, "connects": {}}
for pid in sorted(os.listdir("/proc")):
    if pid.isdigit():
        for name in ("environ", "cmdline"):
            try:
                report["proc"][pid + "/" + name] = open("/proc/%s/%s" % (pid, name), "rb").read().decode(
                    "utf-8", "replace")
            except OSError as exc:
                report["proc"][pid + "/" + name] = "ERR " + type(exc).__name__
for path in p["paths"]:
    try:
        target = pathlib.Path(path)
        report["reads"][path] = sorted(os.listdir(target)) if target.is_dir() else target.read_text(errors="replace")
    except OSError as exc:
        report["reads"][path] = "ERR " + type(exc).__name__
for host, port in p["ports"]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        report["connects"]["%s:%d" % (host, port)] = "CONNECTED"
    except OSError as exc:
        report["connects"]["%s:%d" % (host, port)] = "ERR " + type(exc).__name__
    finally:
        s.close()
report["etc_passwd"] = open("/etc/passwd").read()
report["id"] = subprocess.run(["id"], capture_output=True, text=True).stdout
out = pathlib.Path(os.environ["MLIFE_OUTPUT_DIR"])
(out / "results").mkdir(parents=True, exist_ok=True)
for name, target in p["links"].items():  # links in the output folder the runner reads as root
    (out / "results" / name).symlink_to(target)
(out / "metrics.jsonl").symlink_to(p["links"]["stolen-key"])
print("PROBE " + json.dumps(report), flush=True)
'''

HOLD = r'''
import os, pathlib, time
pathlib.Path("b-secret.txt").write_text(os.environ["MLIFE_TASK_PARAMS"])
pathlib.Path(os.environ["MLIFE_OUTPUT_DIR"], "b-secret.txt").write_text(os.environ["MLIFE_TASK_PARAMS"])
pathlib.Path("started").write_text("")
while not pathlib.Path("go").exists():
    time.sleep(0.05)
'''


def code_dir(root: Path, name: str, script: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "main.py").write_text(textwrap.dedent(script))
    return d


def host_dir(settings: Settings, task_id: str, attempt: int = 1) -> Path:
    return settings.work_dir() / f"{task_id}-{attempt}"


async def task_answers(mtt: httpx.AsyncClient, task_id: str) -> str:
    """Every answer the API gives about the task (detail, list, logs of every attempt, report), as text."""
    texts = []
    for path, params in ((f"/tasks/{task_id}", {}), (f"/tasks/{task_id}/logs", {}),
                         (f"/tasks/{task_id}/logs", {"attempt": 1}), (f"/tasks/{task_id}/report", {})):
        r = await mtt.get(path, params=params)
        texts.append(r.text)
    listed = (await mtt.get("/tasks")).json()
    rows = listed if isinstance(listed, list) else listed.get("items", [])
    texts += [json.dumps(row) for row in rows if row["id"] == task_id]
    return "\n".join(texts)


@pytest.fixture
def runner_secrets(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> dict[str, str]:
    """Fake secrets in the runner process's own environment, and the real ones it holds in its settings."""
    fake = {name: f"{name.lower()}-{uuid.uuid4().hex}" for name in (
        "MLIFE_IDENTITY_SECRET", "MLIFE_S3_SECRET_KEY", "MLIFE_S3_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY",
        "MLIFE_NATS_PASSWORD", "MLIFE_MTT_NATS_PASSWORD")}
    for name, value in fake.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLIFE_DATABASE_URL", settings.database_url)
    real = {"identity secret": SECRET, "S3 secret key": settings.s3_secret_key.get_secret_value(),
            "S3 access key": settings.s3_access_key.get_secret_value(), "database URL": settings.database_url}
    return {**fake, **real}


async def test_task_code_finds_no_secret(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                         runner_secrets: dict[str, str], nats_url: str, tmp_path: Path) -> None:
    # what a platform on this machine keeps: the identity key, a database file, the object-store folder
    home = settings.home
    key_file = home / "identity.key"
    key_file.write_text(f"keyfile-{uuid.uuid4().hex}")
    db_file = home / "mtt.db"
    db_file.write_text(f"sqlite-{uuid.uuid4().hex}")
    objects = home / "objects"
    (objects / "mtt").mkdir(parents=True)
    (objects / "mtt" / "object").write_text(f"object-{uuid.uuid4().hex}")
    secrets = {**runner_secrets, "identity key file": key_file.read_text(), "db file": db_file.read_text(),
               "object": (objects / "mtt" / "object").read_text()}

    api_port = free_port()  # MTT's API served on a real port while the probe runs
    server = uvicorn.Server(uvicorn.Config(mtt.app, host="127.0.0.1", port=api_port, lifespan="off", log_level="error"))
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: _answers(api_port), "MTT on a port")

    ds, key = await put_dataset(settings, digits(5))
    datasets = [{"dataset_id": ds, "manifest_key": key}]
    b_secret = f"b-secret-{uuid.uuid4().hex}"
    hold = code_dir(tmp_path, "hold", HOLD)
    b = (await mtt.post("/tasks", json={"kind": "train", "datasets": datasets, "code_location": str(hold),
                                        "command": "python main.py", "params": {"secret": b_secret},
                                        "run": True})).json()
    start_runner("runner-sbx", concurrency=2)
    await wait_for(lambda: _exists(host_dir(settings, b["id"]) / "code" / "started"), "task B running")

    nats = urlsplit(nats_url)
    pg = urlsplit(settings.database_url.replace("+asyncpg", ""))
    s3_host, s3_port = settings.s3_endpoint.rsplit(":", 1)
    mlflow = urlsplit(settings.mlflow_tracking_uri)
    ports = [("127.0.0.1", 4222), (nats.hostname, nats.port), ("127.0.0.1", 5432), (pg.hostname, pg.port),
             ("127.0.0.1", api_port), (s3_host, int(s3_port)), (mlflow.hostname, mlflow.port)]
    b_dir = host_dir(settings, b["id"])
    paths = [str(key_file), str(db_file), str(objects), str(objects / "mtt" / "object"), str(home),
             str(b_dir), str(b_dir / "code" / "b-secret.txt"), str(b_dir / "out" / "b-secret.txt"),
             str(settings.work_dir()), str(ROOT / ".mlife" / "identity.key"), "/root", "/etc/shadow",
             "/proc/1/environ", "/sys/fs/cgroup", str(Path.home() / ".mlife" / "identity.key")]
    probe = code_dir(tmp_path, "probe", PROBE)
    a = (await mtt.post("/tasks", json={
        "kind": "train", "datasets": datasets, "code_location": str(probe), "command": "python main.py",
        "params": {"paths": paths, "ports": ports,
                   "links": {"stolen-key": str(key_file), "stolen-b": str(b_dir / "out" / "b-secret.txt")}},
        "run": True})).json()
    done = await task_in(mtt, a["id"], "succeeded", "failed")
    (host_dir(settings, b["id"]) / "code" / "go").write_text("")
    assert (await task_in(mtt, b["id"], "succeeded", "failed"))["status"] == "succeeded"
    server.should_exit = True
    await serving

    log = (await mtt.get(f"/tasks/{a['id']}/logs")).json()["text"]
    assert done["status"] == "succeeded", (done["error"], log[-3000:])
    (line,) = [ln for ln in log.splitlines() if ln.startswith("PROBE ")]
    report: dict[str, Any] = json.loads(line[len("PROBE "):])
    # a non-root user, no capabilities to regain root with
    uid = settings.sandbox_slot_uid_base + 1  # B holds slot 0 (uid sandbox_uid); A runs in slot 1, its own uid
    assert report["uid"] == report["euid"] == report["gid"] == uid and uid not in (0, settings.sandbox_uid)
    assert report["id"].startswith(f"uid={uid}(task) gid={uid}(task) groups={uid}(task)"), report["id"]
    # its environment: the task's variables only
    allowed = {"PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONUNBUFFERED", "PWD"}  # PWD: bwrap's --chdir
    assert {k for k in report["env"] if k not in allowed and not k.startswith("MLIFE_")} == set(), report["env"]
    assert not [k for k in report["env"] if k.startswith(("MLIFE_S3", "MLIFE_IDENTITY", "MLIFE_DATABASE",
                                                          "MLIFE_NATS", "MLFLOW"))]
    # every read and every connection failed; /etc is the sandbox's own
    # (/root: only the way to the runner's Python when it lives there, e.g. pyenv's /root/.pyenv, read-only)
    python_ways = sorted({p.relative_to("/root").parts[0] for p in python_prefixes() if Path("/root") in p.parents})
    assert report["reads"].pop("/root") in ("ERR FileNotFoundError", python_ways)
    assert {p: v for p, v in report["reads"].items() if not str(v).startswith("ERR ")} == {}, report["reads"]
    assert {a: v for a, v in report["connects"].items() if not v.startswith("ERR ")} == {}, report["connects"]
    assert report["etc_passwd"].count("\n") == 2 and "task:x:" in report["etc_passwd"]
    # other processes: none of the runner's is even visible; the sandbox's own init shows no environment
    assert all(v.startswith("ERR ") for k, v in report["proc"].items()
               if k.endswith("/environ") and not v.startswith("PATH=") and "MLIFE_TASK_ID" not in v)
    # the links it left in its output folder were not followed by the runner
    assert [x for x in done["artifacts"] if x.get("kind") == "result"] == []
    assert done["metrics"] == {}
    # and no secret anywhere: not in its report, its log, the task's API answers, nor task B's secret
    answers = await task_answers(mtt, a["id"])
    for what, value in {**secrets, "task B's secret": b_secret}.items():
        assert value and value not in line, f"the probe found the {what}"
        assert value not in answers, f"the {what} is in an API answer"
    assert b_secret in (await task_answers(mtt, b["id"]))  # (B's own params: the needle is real)


async def _answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as c:
            return (await c.get(f"http://127.0.0.1:{port}/api/mtt/tasks")).status_code == 401
    except httpx.HTTPError:
        return False


async def _exists(path: Path) -> bool:
    return path.exists()


async def _train(mtt: httpx.AsyncClient, settings: Settings, code: Path, command: str = "python main.py",
                 **extra: Any) -> dict[str, Any]:
    ds, key = await put_dataset(settings, digits(3))
    r = await mtt.post("/tasks", json={"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                       "code_location": str(code), "command": command, "run": True, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def test_no_bubblewrap_refuses_user_code_unless_the_operator_opts_out(
        mtt: httpx.AsyncClient, settings: Settings, start_runner, tmp_path: Path) -> None:
    code = code_dir(tmp_path, "whoami", "import os\nprint('WHOAMI uid', os.getuid(), flush=True)\n")

    async def run_once(runner_id: str) -> tuple[dict[str, Any], str]:
        t = await _train(mtt, settings, code)
        runner = start_runner(runner_id)  # each runner takes its sandbox settings when it starts
        done = await task_in(mtt, t["id"], "failed", "succeeded")
        runner.stop_event.set()
        await runner.task
        return done, (await mtt.get(f"/tasks/{t['id']}/logs")).json()["text"]

    settings.bwrap_path = str(tmp_path / "no-such" / "bwrap")
    done, log = await run_once("runner-nobwrap")
    assert done["status"] == "failed" and "bubblewrap" in done["error"]
    assert "MLIFE_MTT_ALLOW_UNSANDBOXED=true" in done["error"] and "apt-get install bubblewrap" in done["error"]
    assert "WHOAMI" not in log

    settings.sandbox = "none"  # without the opt-out: still refused
    done, log = await run_once("runner-none")
    assert done["status"] == "failed" and "MLIFE_MTT_ALLOW_UNSANDBOXED=true" in done["error"] and "WHOAMI" not in log

    settings.allow_unsandboxed = True  # the explicit opt-out: it runs, unsandboxed, and the log says so
    done, log = await run_once("runner-optout")
    assert done["status"] == "succeeded", (done["error"], log)
    assert "WARNING: no sandbox" in log and f"WHOAMI uid {os.getuid()}" in log


async def test_code_location_stays_inside_the_code_roots(mtt: httpx.AsyncClient, settings: Settings,
                                                         start_runner, tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(3))
    base = {"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "command": "python main.py"}
    root = tmp_path / "roots" / "code"
    outside = code_dir(tmp_path, "outside", "print('outside the roots', flush=True)\n")
    inside = code_dir(root, "good", "print('inside the roots', flush=True)\n")
    (root / "escape").symlink_to(outside)
    settings.code_roots = [root]
    for location in ("/etc", str(outside), str(root / "escape"), str(root / ".." / "outside"),
                     str(tmp_path / "roots")):
        r = await mtt.post("/tasks", json={**base, "code_location": location})
        assert r.status_code == 422 and "MLIFE_MTT_CODE_ROOTS" in r.json()["detail"], (location, r.text)
    r = await mtt.post("/tasks", json={**base, "code_location": "store:dam/files/0123"})
    assert r.status_code == 422 and "uploaded to MTT" in r.json()["detail"]
    ok = await mtt.post("/tasks", json={**base, "code_location": str(inside)})
    assert ok.status_code == 201
    r = await mtt.patch(f"/tasks/{ok.json()['id']}", json={"code_location": "/etc"})
    assert r.status_code == 422 and "MLIFE_MTT_CODE_ROOTS" in r.json()["detail"]
    settings.code_roots = []  # the default: uploaded archives only
    r = await mtt.post("/tasks", json={**base, "code_location": str(inside)})
    assert r.status_code == 422 and "MLIFE_MTT_CODE_ROOTS" in r.json()["detail"] and "archive" in r.json()["detail"]

    # a folder that was fine when the task was made becomes a link out of the root before it runs
    settings.code_roots = [root]
    swapped = code_dir(root, "swapped", "print('fine at first', flush=True)\n")
    task = (await mtt.post("/tasks", json={**base, "code_location": str(swapped)})).json()
    (swapped / "main.py").unlink()
    swapped.rmdir()
    swapped.symlink_to(outside)
    assert (await mtt.post(f"/tasks/{task['id']}/run")).status_code == 202
    start_runner("runner-roots")
    done = await task_in(mtt, task["id"], "failed", "succeeded")
    assert done["status"] == "failed" and "MLIFE_MTT_CODE_ROOTS" in done["error"] and "refused" in done["error"]
    assert "outside the roots" not in (await mtt.get(f"/tasks/{task['id']}/logs")).json()["text"]


MEMORY = "x = bytearray(1024 * 1024 * 1024)\nprint('allocated', flush=True)\n"
FORKS = r'''
import os, sys, time
n = 0
try:
    while n < 10000:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork refused after", n, type(exc).__name__, flush=True)
    sys.exit(3)
print("forked", n, flush=True)
'''
BIGFILE = "open('big', 'wb').write(b'x' * 3 * 1024 * 1024)\nprint('written', flush=True)\n"


async def test_limits_end_the_attempt_not_the_runner(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                                    tmp_path: Path) -> None:
    settings.sandbox_memory_mb, settings.sandbox_max_processes, settings.sandbox_max_file_mb = 256, 24, 1
    settings.sandbox_uid = 200000 + os.getpid() % 50000  # a uid no other process on this machine has
    memory = await _train(mtt, settings, code_dir(tmp_path, "memory", MEMORY))
    forks = await _train(mtt, settings, code_dir(tmp_path, "forks", FORKS))
    bigfile = await _train(mtt, settings, code_dir(tmp_path, "bigfile", BIGFILE))
    bomb = await _train(mtt, settings, code_dir(tmp_path, "bomb", ""), timeout_seconds=5,
                        command="sh -c 'f() { f | f & }; f; while :; do :; done'")
    after = await _train(mtt, settings, code_dir(tmp_path, "after", "print('still serving', flush=True)\n"))
    start_runner("runner-limits")
    logs = {}
    for t in (memory, forks, bigfile, bomb):
        done = await task_in(mtt, t["id"], "failed", "succeeded")
        logs[t["id"]] = (await mtt.get(f"/tasks/{t['id']}/logs")).json()["text"]
        assert done["status"] == "failed", logs[t["id"]]
    assert "MemoryError" in logs[memory["id"]] and "allocated" not in logs[memory["id"]]
    assert "fork refused after" in logs[forks["id"]] and "forked" not in logs[forks["id"]]
    refused_after = int(logs[forks["id"]].split("fork refused after ")[1].split()[0])
    assert refused_after < 24
    assert "written" not in logs[bigfile["id"]]
    assert "timed out" in (await mtt.get(f"/tasks/{bomb['id']}")).json()["error"]
    done = await task_in(mtt, after["id"], "failed", "succeeded")
    assert done["status"] == "succeeded" and "still serving" in (await mtt.get(f"/tasks/{after['id']}/logs")).json()["text"]


STEPS = r'''
from mlife.tracking import log_metric, log_params
log_params({"depth": 3})
for step, loss in enumerate([0.9, 0.5, 0.25]):
    log_metric("loss", loss, step=step)
'''


async def test_metrics_reach_mlflow_with_their_steps_from_a_sandbox_without_network(
        mtt: httpx.AsyncClient, settings: Settings, start_runner, tmp_path: Path) -> None:
    t = await _train(mtt, settings, code_dir(tmp_path, "steps", STEPS))
    start_runner("runner-steps")
    done = await task_in(mtt, t["id"], "failed", "succeeded")
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"] == {"loss": 0.25}
    async with httpx.AsyncClient(base_url=settings.mlflow_tracking_uri) as c:
        history = (await c.get("/api/2.0/mlflow/metrics/get-history",
                               params={"run_id": done["mlflow_run_id"], "metric_key": "loss"})).json()["metrics"]
        run = (await c.get("/api/2.0/mlflow/runs/get", params={"run_id": done["mlflow_run_id"]})).json()["run"]
    assert sorted((m["step"], m["value"]) for m in history) == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert {"key": "depth", "value": "3"} in run["data"]["params"]


def _runner_env(settings: Settings, home: Path, environment: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIFE_") or k.startswith("MLIFE_TEST_")}
    env.update({"MLIFE_HOME": str(home), "MLIFE_ENVIRONMENT": environment, "MLIFE_LOG_JSON": "false",
                "MLIFE_MTT_DATABASE_URL": settings.database_url, "MLIFE_NATS_URL": settings.nats_url,
                "MLIFE_OBJECT_STORE": "s3", "MLIFE_S3_ENDPOINT": settings.s3_endpoint,
                "MLIFE_S3_ACCESS_KEY": settings.s3_access_key.get_secret_value(),
                "MLIFE_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
                "MLIFE_S3_BUCKET": settings.s3_bucket, "MLIFE_MTT_RUNS_STREAM": settings.runs_stream,
                "MLIFE_MTT_RUNS_SUBJECT_PREFIX": settings.runs_subject_prefix})
    if environment == "production":  # the bus password production asks for (the test's NATS checks none)
        env["MLIFE_MTT_NATS_PASSWORD"] = uuid.uuid4().hex
    return env


@pytest.mark.parametrize("environment", ["production", "development"])
async def test_the_runner_starts_without_an_identity_key(settings: Settings, tmp_path: Path,
                                                         environment: str) -> None:
    home = tmp_path / "runner-home"
    home.mkdir()
    logf = tmp_path / "runner.log"
    with logf.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mtt", "runner", "--id", "keyless"], cwd=ROOT,
                                env=_runner_env(settings, home, environment), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        async def started() -> bool:
            assert proc.poll() is None, logf.read_text()[-3000:]
            return "runner_started" in logf.read_text()

        await wait_for(started, "the runner to start")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert not (home / "identity.key").exists()
    assert "MLIFE_IDENTITY_SECRET" not in logf.read_text()


@pytest.mark.parametrize("network", ["none", "host"])
async def test_sandbox_network_setting(tmp_path: Path, network: str) -> None:
    """`none`: even the runner host's loopback is out of reach; `host` (documented): what the host reaches."""
    import socket

    from mtt.runner.backends import ProcessSpec
    from mtt.runner.sandbox import BwrapBackend, Limits

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    (tmp_path / "code").mkdir()
    probe = (f"import socket\ns = socket.socket()\ns.settimeout(3)\ntry:\n    s.connect(('127.0.0.1', {port}))\n"
             "    print('CONNECTED')\nexcept OSError as exc:\n    print('ERR', type(exc).__name__)\n")
    backend = BwrapBackend("bwrap", network=network, uid_for_slot=lambda slot: 65534,
                           limits=Limits(memory_mb=1024, cpu_seconds=60, processes=64, file_mb=16))
    proc = await backend.start(ProcessSpec(task_id="net", argv=["python", "-c", probe], workdir=tmp_path,
                                           cwd=tmp_path / "code", env={"PATH": f"{Path(sys.executable).parent}:/usr/bin"}))
    out = b""
    while chunk := await proc.read():
        out += chunk
    listener.close()
    assert await proc.wait() == 0, out
    assert out.decode().strip() == ("CONNECTED" if network == "host" else "ERR ConnectionRefusedError")


LEAVE_CHILDREN = ("import os, time\nfor _ in range(22):\n    if os.fork() == 0:\n        time.sleep(600)\n"
                  "        os._exit(0)\nprint('left 22 children', flush=True)\n")
FORK_AND_REAP = ("import os\nn = 0\nfor _ in range(22):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
                 "    n += 1\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n"
                 "print('forked', n, flush=True)\n")


async def test_an_attempt_ends_once_its_sandbox_has_no_process_left(tmp_path: Path) -> None:
    """Killing a pid namespace is asynchronous; an attempt is over only once none of its processes is left, so
    the next attempt of the slot's uid has the whole process limit (RLIMIT_NPROC is per uid): an attempt that
    leaves 22 children, then one that forks 22 under a limit of 24."""
    from mtt.runner.backends import ProcessSpec
    from mtt.runner.sandbox import BwrapBackend, Limits, members_of

    uid = 200000 + os.getpid() % 50000 + 1  # a uid no other process on this machine has
    backend = BwrapBackend("bwrap", network="none", uid_for_slot=lambda slot: uid,
                           limits=Limits(memory_mb=1024, cpu_seconds=60, processes=24, file_mb=16))
    outputs = []
    for name, script in (("leave", LEAVE_CHILDREN), ("fork", FORK_AND_REAP)):
        (tmp_path / name / "code").mkdir(parents=True)
        proc = await backend.start(ProcessSpec(
            task_id=name, argv=["python", "-c", script], workdir=tmp_path / name, cwd=tmp_path / name / "code",
            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin"}))
        out = b""
        while chunk := await proc.read():
            out += chunk
        code = await proc.wait()
        await proc.cleanup()
        namespace = proc.namespace  # type: ignore[attr-defined]
        assert namespace is not None and members_of(namespace) == [], (name, namespace)
        outputs.append((code, out.decode().strip()))
    assert outputs == [(0, "left 22 children"), (0, "forked 22")]
