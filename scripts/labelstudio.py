"""A real Label Studio for DAM's tests and for development: installed in its own venv
(`.venv-labelstudio`, pinned version) when missing, started on 127.0.0.1 on a free port with its data
in a temporary folder, a user and a legacy API token created non-interactively, and waited for.

    .venv/bin/python scripts/labelstudio.py        # start one, print its URL and token, stop on Ctrl-C

Tests use `start()` / `LabelStudio.stop()` (tests/dam/conftest.py, a session fixture)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

VERSION = "1.23.2"
ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MLIFE_LABELSTUDIO_VENV", ROOT / ".venv-labelstudio"))
STAMP = VENV / f".installed-label-studio-{VERSION}"


def ensure_installed() -> Path:
    """The `label-studio` executable, installing the pinned version into its own venv if needed."""
    exe = VENV / "bin" / "label-studio"
    if STAMP.exists() and exe.exists():
        return exe
    print(f"labelstudio: installing label-studio=={VERSION} into {VENV} (takes a few minutes)", file=sys.stderr)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"label-studio=={VERSION}"], check=True)
    STAMP.touch()
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabelStudio:
    url: str
    token: str
    username: str
    password: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _ready(url: str, token: str) -> bool:
    req = urllib.request.Request(f"{url}/api/projects?page_size=1", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - our own local server
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(*, timeout: float = 600.0) -> LabelStudio:
    exe = ensure_installed()
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="mlife-labelstudio-"))
    username, password, token = "mlife@example.com", secrets.token_urlsafe(16), secrets.token_hex(20)
    env = dict(os.environ, LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false",
               LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), LABEL_STUDIO_USERNAME=username,
               LABEL_STUDIO_PASSWORD=password, LABEL_STUDIO_USER_TOKEN=token,
               LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true", LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
               # Webhooks go to DAM on 127.0.0.1, which the default SSRF protection forbids.
               SSRF_PROTECTION_ENABLED="false", USE_DEFAULT_BANNED_SUBNETS="false",
               DJANGO_DB="sqlite", PYTHONUNBUFFERED="1")
    log_path = data_dir / "labelstudio.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(data_dir), "--username", username, "--password", password,
                             "--user-token", token, "--enable-legacy-api-token"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    ls = LabelStudio(f"http://127.0.0.1:{port}", token, username, password, proc, data_dir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = ls.log_tail()
            ls.stop()
            raise RuntimeError(f"Label Studio exited with {proc.returncode}:\n{tail}")
        if _ready(ls.url, token):
            return ls
        time.sleep(1.0)
    tail = ls.log_tail()
    ls.stop()
    raise TimeoutError(f"Label Studio was not ready after {timeout:.0f} s:\n{tail}")


def main() -> None:
    # Block the stop signals first so that sigwait receives them (else SIGTERM kills us before the cleanup).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    started = time.monotonic()
    ls = start()
    print(f"Label Studio {VERSION} ready in {time.monotonic() - started:.0f} s at {ls.url}")
    print(f"  user {ls.username} / {ls.password}; API token (Authorization: Token …): {ls.token}")
    print(f"  MLIFE_DAM_LABELSTUDIO_URL={ls.url} MLIFE_DAM_LABELSTUDIO_TOKEN={ls.token}")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        ls.stop()


if __name__ == "__main__":
    main()
