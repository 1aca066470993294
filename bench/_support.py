"""What the benches share: a service's API as a real subprocess (`python -m <svc> api`) on a free port."""

from __future__ import annotations

import asyncio
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

import httpx
import nats


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
        yield base
    finally:
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
