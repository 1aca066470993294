"""What the benches share: a service's API as a real subprocess (`python -m <svc> api`) on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import nats

PIDS: dict[str, int] = {}  # base URL of a running service_api -> its process id (for CPU accounting)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def service_api(service: str, database_url: str, secret: str,
                      extra_env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """The service's API on a free port, with its own temporary home; yields its base URL
    (`http://127.0.0.1:<port>/api/<service>`). Stopped (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix=f"mlife-bench-{service}-"))
    env = {**os.environ, "MLIFE_ENVIRONMENT": "test", f"MLIFE_{service.upper()}_DATABASE_URL": database_url,
           "MLIFE_IDENTITY_SECRET": secret, "MLIFE_HOME": str(home), "MLIFE_LOG_LEVEL": "WARNING",
           "MLIFE_NATS_URL": os.environ.get("MLIFE_TEST_NATS_URL", "nats://127.0.0.1:4222"), **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", service, "api", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/{service}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with suppress(httpx.HTTPError):
                    if (await client.get(f"{base}/healthz")).status_code == 200:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} api exited with {proc.returncode}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{service} api did not start")
        PIDS[base] = proc.pid
        yield base
    finally:
        PIDS.pop(base, None)
        stop_and_remove(proc, home, wait=15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_and_remove(proc: subprocess.Popen[bytes], folder: Path, *, wait: float) -> None:
    """SIGTERM, `wait` seconds for a graceful exit, SIGKILL; then the process's temporary folder goes."""
    proc.send_signal(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(wait)
    proc.kill()  # no-op once it has exited
    shutil.rmtree(folder, ignore_errors=True)


async def _quiet(_: Exception) -> None:
    pass


@asynccontextmanager
async def own_nats() -> AsyncIterator[str]:
    """A nats-server 2.x from the wheel with JetStream in a temp dir; stopped and removed afterwards."""
    port = free_port()
    store = Path(tempfile.mkdtemp(prefix="mlife-bench-nats-"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port),
                             "-js", "-sd", str(store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with suppress(Exception):
                nc = await nats.connect(url, connect_timeout=0.5, max_reconnect_attempts=0, error_cb=_quiet)
                await nc.jetstream().account_info()
                await nc.close()
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("nats-server did not start")
        yield url
    finally:
        stop_and_remove(proc, store, wait=10)


# --- the figures every bench reports (`make bench` merges them into one JSON) -----------------------------------

def add_report_args(parser: Any) -> None:
    """`--quick` (a smoke run: small sizes, seconds not minutes) and `--out PATH` (write this bench's figures as
    JSON there), which every bench accepts so that `python -m bench` can run them all."""
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, a few seconds per scenario")
    parser.add_argument("--out", type=Path, default=None, help="write this bench's figures as JSON to this file")


def figure(name: str, value: float | None, unit: str, goal: str, met: bool | None, *, peer: float | None = None,
           peer_name: str = "", detail: str = "") -> dict[str, Any]:
    """One row of the bench table. `name`: what is measured ("events: throughput MLife/raw"); `value` in `unit`
    ("x", "ms", "req/s", "MiB"); `goal`: as the issue states it (">= 0.25x"); `met`: whether `value` meets it
    (None: informational, no goal); `peer`: the same-run peer's figure when `value` is not already a ratio."""
    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": met, "peer": peer,
            "peer_name": peer_name, "detail": detail}


def write_figures(out: Path | None, bench: str, figures: list[dict[str, Any]], raw: dict[str, Any] | None = None,
                  *, quick: bool = False) -> None:
    """Write `{"bench", "quick", "load", "figures": [figure(...)], "raw": {...}}` to `out` (if given)."""
    if out is None:
        return
    doc = {"bench": bench, "quick": quick, "load": list(os.getloadavg()), "figures": figures, "raw": raw or {}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
