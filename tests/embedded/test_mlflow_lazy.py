"""`mlife up` starts MLflow on its first use: none at idle, then the first connection to its port starts it
(through the launcher's relay), and a stop leaves no MLflow process behind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

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
