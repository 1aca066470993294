"""Processes the tests start (services, the gateway, NATS): logs to files, readiness, teardown."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx

# How long a process the tests start may take to answer: a bound on a hang, never an assertion on time (a 2-core
# machine running two xdist workers, each starting a platform of processes, took more than a minute).
READY_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_file(home: Path, name: str) -> IO[bytes]:
    """Logs go to a file (never a pipe nobody reads: a full pipe blocks the server's event loop)."""
    home.mkdir(parents=True, exist_ok=True)
    return open(home / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it


def tail(log: Path, chars: int = 1500) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def start(home: Path, name: str, argv: list[str], env: Mapping[str, str] | None = None, *,
          group: bool = False) -> subprocess.Popen[bytes]:
    """A process logging to <home>/<name>.log; `argv` starting with "-m" runs this Python. `group`: in a process
    group of its own, for a server that forks workers (stop it with `stop(..., group=True)`)."""
    if argv[0] == "-m":
        argv = [sys.executable, *argv]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log_file(home, name),
                            start_new_session=group)


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """One process of the machine at a time in the block (pytest-xdist workers installing the same venv)."""
    with open(Path(tempfile.gettempdir()) / f"mlife-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float,
                     path: str = "/healthz") -> str | None:
    """None once `url + path` answers 200; otherwise why not (the process exited, with its log, or time ran out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as c:
        while asyncio.get_running_loop().time() < deadline:
            if proc.poll() is not None:
                return "exited: " + tail(log)
            try:
                if (await c.get(f"{url}{path}")).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    return "not ready in time"


async def wait_port(port: int, timeout: float = 20) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(0.1)
    return False


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15, *, group: bool = False) -> None:
    """SIGTERM to all (last started first), then wait for each; SIGKILL what does not exit in time. `group`: the
    signals go to each one's process group (started with `start(..., group=True)`)."""
    procs = list(procs)

    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    for proc in reversed(procs):
        if proc.poll() is None:
            _signal(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(5)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (children, their children, …)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
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
    """Running (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False
