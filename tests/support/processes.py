"""Processes the tests start (services, the gateway, NATS): logs to files, readiness, teardown."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import httpx


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


def start(home: Path, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process logging to <home>/<name>.log; `argv` starting with "-m" runs this Python."""
    if argv[0] == "-m":
        argv = [sys.executable, *argv]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log_file(home, name))


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


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM to all (last started first), then wait for each; SIGKILL what does not exit in time."""
    procs = list(procs)
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
