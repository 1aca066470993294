"""`mlife up`, the embedded default, as a process: started on a home folder, awaited, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.processes import READY_TIMEOUT, free_port

TOKEN = "mlf_embedded_smoke_token_0123456789"


def start(home: Path, port: int, log: list[str], nats_port: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, MLIFE_HOME=str(home), MLIFE_PORT=str(port), MLIFE_NATS_PORT=str(nats_port or free_port()),
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


def wait_until_up(proc: subprocess.Popen[str], log: list[str], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("MLife is up" in line for line in log):
            return
        assert proc.poll() is None, "mlife up exited early:\n" + "".join(log[-60:])
        time.sleep(0.2)
    raise AssertionError("mlife up was not ready in time:\n" + "".join(log[-60:]))


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)
