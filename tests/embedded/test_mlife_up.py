"""The embedded default, for real: `mlife up` on SQLite, a local object folder and NATS from the
wheel; ready, merged OpenAPI, a clean stop with no orphan, and data kept across a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

TOKEN = "mlf_embedded_smoke_token_0123456789"


def start(home: Path, port: int, log: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, MLIFE_HOME=str(home), MLIFE_PORT=str(port), MLIFE_NATS_PORT=str(free_port()),
               MLIFE_ADMIN_TOKEN=TOKEN)
    for var in [k for k in env if k.startswith(("MLIFE_TEST_", "MLIFE_NATS_URL", "MLIFE_DATABASE_URL"))]:
        env.pop(var)
    mlife = Path(sys.executable).parent / "mlife"
    proc = subprocess.Popen([str(mlife), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def _read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)

    threading.Thread(target=_read, daemon=True).start()
    return proc


def wait_until_up(proc: subprocess.Popen[str], log: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("MLife is up" in line for line in log):
            return
        assert proc.poll() is None, "mlife up exited early:\n" + "".join(log[-60:])
        time.sleep(0.2)
    raise AssertionError("mlife up was not ready in time:\n" + "".join(log[-60:]))


def descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def test_mlife_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    home, port, log = tmp_path / "home", free_port(), []
    proc = start(home, port, log)
    try:
        wait_until_up(proc, log)
        children = descendants(proc.pid)
        assert len(children) >= 6, "nats + 4 services (api and worker) + gateway"
        base = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        assert ready["status"] == "ok", ready
        assert {"bam", "dam", "mtt", "msm", "nats", "database"} <= set(ready["checks"])
        paths = httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        for svc in ("bam", "dam", "mtt", "msm"):
            assert f"/api/{svc}/healthz" in paths, svc
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/api/dam/dead-letters", headers=auth, timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/dam/dead-letters", timeout=10).status_code == 401
        assert re.search(r"MLife is up at http://127\.0\.0\.1:\d+", "".join(log))
    finally:
        code = stop(proc)
    assert code == 0, "".join(log[-40:])
    left = [pid for pid in children if alive(pid)]
    assert not left, f"orphans after stop: {left}"
    assert (home / "bam.db").exists() and (home / "nats" / "jetstream").exists()

    log2: list[str] = []
    proc2 = start(home, port, log2)
    try:
        wait_until_up(proc2, log2)
        me = httpx.get(f"http://127.0.0.1:{port}/api/gateway/me", headers={"Authorization": f"Bearer {TOKEN}"},
                       timeout=10)
        assert me.status_code == 200 and me.json()["username"] == "admin"
        assert not any("admin user was created" in line for line in log2), "the admin is created once"
    finally:
        assert stop(proc2) == 0
