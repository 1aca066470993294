"""`mlife up` starts MLflow on its first use: none at idle, then the first connection to its port starts it
(through the launcher's relay), and a stop leaves no MLflow process behind. Idle for MLIFE_MLFLOW_IDLE_SECONDS,
MLflow is stopped (not restarted as a crash) and its next use starts it again, its experiments kept; a connection
in use is not cut, and one arriving during the stop waits for the fresh start."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlife.launcher import Child, Launcher, LauncherConfig
from tests.support import processes
from tests.support.embedded import start, stop, wait_until_up
from tests.support.processes import alive, descendants, free_port

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = ROOT / ".venv-mlflow/bin/mlflow"


def ensure_mlflow() -> None:
    """`make up` creates `.venv-mlflow`; here the test does (as tests/mtt's `mlflow_server`), one xdist worker at
    a time."""
    with processes.exclusive("venv-mlflow"):
        if not MLFLOW.is_file():
            subprocess.run([str(ROOT / "services" / "mtt" / "scripts" / "mlflow-venv.sh")], check=True)


def mlflow_pids(root: int) -> list[int]:
    found = []
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if any(b"mlflow_server" in a or a.startswith(b"mlflow.server") for a in argv):
                found.append(pid)
        except OSError:
            continue
    return found


def test_mlflow_starts_on_its_first_use(tmp_path: Path) -> None:
    ensure_mlflow()
    log: list[str] = []
    proc = start(tmp_path / "home", free_port(), log)
    started: list[int] = []
    try:
        wait_until_up(proc, log)
        url = re.search(r"MLflow at (http://127\.0\.0\.1:\d+) \(started on its first use\)", "".join(log))
        assert url, "".join(log[-40:])
        assert not mlflow_pids(proc.pid), "MLflow runs before anything used it"
        r = httpx.get(f"{url.group(1)}/health", timeout=170)  # the first connection waits for MLflow's start
        assert r.status_code == 200, r.text
        experiments = httpx.get(f"{url.group(1)}/api/2.0/mlflow/experiments/search?max_results=5", timeout=30)
        assert experiments.status_code == 200 and "experiments" in experiments.json()
        started = mlflow_pids(proc.pid)
        assert started, "MLflow did not start"
    finally:
        code = stop(proc)
    assert code == 0, "".join(log[-40:])
    assert not [pid for pid in started if alive(pid)], "MLflow outlived mlife up"


def mlflow_url(log: list[str]) -> str:
    url = re.search(r"MLflow at (http://127\.0\.0\.1:\d+) \(started on its first use\)", "".join(log))
    assert url, "".join(log[-40:])
    return url.group(1)


def test_mlflow_idle_is_stopped_and_its_next_use_starts_it_again(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_mlflow()
    monkeypatch.setenv("MLIFE_MLFLOW_IDLE_SECONDS", "3")  # start() passes the test's environment on
    log: list[str] = []
    proc = start(tmp_path / "home", free_port(), log)
    first: list[int] = []
    second: list[int] = []
    try:
        wait_until_up(proc, log)
        url = mlflow_url(log)
        created = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "kept-across-stops"},
                             timeout=170)  # starts MLflow
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        first = mlflow_pids(proc.pid)
        assert first, "MLflow did not start"
        deadline = time.monotonic() + 120
        while [pid for pid in first if alive(pid)] or "MLflow stopped after" not in "".join(log):
            assert time.monotonic() < deadline, "MLflow was not stopped once idle:\n" + "".join(log[-40:])
            assert proc.poll() is None, "".join(log[-40:])
            time.sleep(0.2)
        assert not mlflow_pids(proc.pid), "MLflow was restarted after its idle stop"
        found = httpx.get(f"{url}/api/2.0/mlflow/experiments/get-by-name",
                          params={"experiment_name": "kept-across-stops"}, timeout=170)  # starts it again
        assert found.status_code == 200, found.text
        assert found.json()["experiment"]["experiment_id"] == experiment_id
        second = mlflow_pids(proc.pid)
        assert second and not set(second) & set(first), "MLflow did not start again"
    finally:
        code = stop(proc)
    text = "".join(log)
    assert code == 0, text[-4000:]
    assert "mlflow exited with" not in text, "the idle stop was taken for a crash"
    assert re.search(r"mlife: MLflow stopped after \d+ s idle \(starts again on its next use\)", text)
    assert not [pid for pid in first + second if alive(pid)], "MLflow outlived mlife up"


def test_a_connection_in_use_keeps_mlflow_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_mlflow()
    monkeypatch.setenv("MLIFE_MLFLOW_IDLE_SECONDS", "3")
    log: list[str] = []
    proc = start(tmp_path / "home", free_port(), log)
    pids: list[int] = []
    try:
        wait_until_up(proc, log)
        with httpx.Client(base_url=mlflow_url(log), timeout=170) as client:  # keep-alive: one connection
            assert client.get("/health").status_code == 200  # starts MLflow
            pids = mlflow_pids(proc.pid)
            assert pids, "MLflow did not start"
            for _ in range(6):
                time.sleep(1)
                r = client.get("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
                assert r.status_code == 200, r.text
            assert mlflow_pids(proc.pid) == pids, "MLflow was stopped while in use"
        assert "MLflow stopped after" not in "".join(log)
    finally:
        code = stop(proc)
    assert code == 0, "".join(log[-40:])
    assert not [pid for pid in pids if alive(pid)], "MLflow outlived mlife up"


STAND_IN = """
import http.server, os, pathlib, signal, sys, time

port, folder = int(sys.argv[1]), pathlib.Path(sys.argv[2])


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def stopping(*_):  # a slow stop: it ends when the test releases it
    (folder / f"term-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(0)


signal.signal(signal.SIGTERM, stopping)
http.server.HTTPServer(("127.0.0.1", port), Answer).serve_forever()
"""


async def fetch(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 60)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), answer
    return body.decode()


async def test_a_connection_during_the_idle_stop_waits_for_a_fresh_start(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The launcher's proxy in-process, before a stand-in for MLflow (a real HTTP server whose stop lasts until
    the test releases it): a connection while it stops gets an answer from the next one, started for it."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    config = LauncherConfig(home=tmp_path, port=free_port(), nats_url=None, nats_port=0, mlflow_port=free_port(),
                            mlflow_own_port=free_port(), mlflow_idle_seconds=1)
    launcher = Launcher(config)
    child = Child("mlflow", [sys.executable, str(script), str(config.mlflow_own_port), str(tmp_path)], group=True)
    launcher.children = [child]
    supervisors: list[asyncio.Task[None]] = []
    proxy = await launcher.mlflow_proxy(child, dict(os.environ), supervisors)
    pids: list[int] = []
    try:
        pids.append(int(await fetch(config.mlflow_port)))  # starts the first
        deadline = time.monotonic() + 60
        while not (tmp_path / f"term-{pids[0]}").exists():  # idle: its stop has begun
            assert time.monotonic() < deadline, "the idle stand-in was not stopped"
            await asyncio.sleep(0.05)
        during = asyncio.create_task(fetch(config.mlflow_port))
        await asyncio.sleep(0.5)  # accepted by the proxy meanwhile (were it later, the outcome would be the same)
        assert not during.done(), "a connection was answered while MLflow stopped"
        (tmp_path / "release").touch()
        pids.append(int(await during))
        assert pids[1] != pids[0] and not alive(pids[0])
        assert "MLflow stopped after" in capsys.readouterr().out
    finally:
        proxy.close()
        for task in supervisors:
            task.cancel()
        launcher.stop.set()
        await launcher.shutdown()
    assert not [pid for pid in pids if alive(pid)]
