"""Label Studio beside MLife: the pinned version installed into a venv of its own when missing, started on
127.0.0.1 with a user and a legacy API token created non-interactively, and waited for.

`mlife up --label-studio` runs it as a launcher child: the venv in $MLIFE_HOME/labelstudio/venv (or
$MLIFE_LABELSTUDIO_VENV), its data in $MLIFE_HOME/labelstudio/data, the login (user, password, token) kept
0600 in $MLIFE_HOME/labelstudio so they hold across restarts. scripts/labelstudio.py starts a throwaway one
(temporary data) for DAM's tests."""

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VERSION = "1.23.2"
USERNAME = "mlife@example.com"


def venv_dir(home: Path) -> Path:
    return Path(os.environ.get("MLIFE_LABELSTUDIO_VENV") or home / "labelstudio" / "venv")


# Label Studio leaves these dependencies unpinned, and a release of one broke it: label-studio 1.23.2 calls
# sentry_sdk.init(send_default_pii=...), an option sentry-sdk 3.0 no longer takes (it then exits at start).
COMPANION_PINS = ("sentry-sdk<3",)
_PINS_TAG = "sentry2"  # in the install stamp: a venv installed before the pins is installed again


def ensure_installed(venv: Path) -> Path:
    """The `label-studio` executable, installing the pinned version into its own venv if needed."""
    exe, stamp = venv / "bin" / "label-studio", venv / f".installed-label-studio-{VERSION}-{_PINS_TAG}"
    if stamp.exists() and exe.exists():
        return exe
    print(f"labelstudio: installing label-studio=={VERSION} into {venv} (takes a few minutes)", file=sys.stderr,
          flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"label-studio=={VERSION}", *COMPANION_PINS], check=True)
    stamp.touch()
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret in a 0600 file, made on first use and read back afterwards."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    token: str  # DRF's token key: at most 40 characters

    @classmethod
    def fresh(cls) -> Login:
        return cls(USERNAME, secrets.token_urlsafe(16), secrets.token_hex(20))

    @classmethod
    def kept(cls, folder: Path) -> Login:
        """The login kept in `folder` (password and token files, 0600), created on first use."""
        return cls(USERNAME, kept_secret(folder / "password", lambda: secrets.token_urlsafe(16)),
                   kept_secret(folder / "token", lambda: secrets.token_hex(20)))


def server_env(data_dir: Path, login: Login) -> dict[str, str]:
    """Label Studio's own environment: no phoning home, the user and token made on start, SQLite in data_dir."""
    return {"LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LABEL_STUDIO_USERNAME": login.username,
            "LABEL_STUDIO_PASSWORD": login.password, "LABEL_STUDIO_USER_TOKEN": login.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # Webhooks go to DAM on 127.0.0.1, which the default SSRF protection forbids.
            "SSRF_PROTECTION_ENABLED": "false", "USE_DEFAULT_BANNED_SUBNETS": "false",
            "DJANGO_DB": "sqlite", "PYTHONUNBUFFERED": "1"}


def server_argv(exe: Path, port: int, data_dir: Path, login: Login) -> list[str]:
    return [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
            # `--opt=value`: a generated password may begin with "-", which argparse would take for an option
            "--data-dir", str(data_dir), f"--username={login.username}", f"--password={login.password}",
            f"--user-token={login.token}", "--enable-legacy-api-token"]


def ready(url: str, token: str) -> bool:
    """Whether Label Studio answers an API call made with the token."""
    req = urllib.request.Request(f"{url}/api/projects?page_size=1", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - our own local server
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LabelStudio:
    url: str
    token: str
    username: str
    password: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    throwaway: bool = True  # its data is removed on stop

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.throwaway:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def start(venv: Path, *, data_dir: Path | None = None, login: Login | None = None,
          timeout: float = 600.0) -> LabelStudio:
    """Start one and wait until it answers with the token; without data_dir its data is temporary."""
    exe = ensure_installed(venv)
    port, login = free_port(), login or Login.fresh()
    throwaway = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="mlife-labelstudio-")) if data_dir is None else data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "labelstudio.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(server_argv(exe, port, data_dir, login), env={**os.environ, **server_env(data_dir, login)},
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()  # the child holds its own descriptor
    ls = LabelStudio(f"http://127.0.0.1:{port}", login.token, login.username, login.password, proc, data_dir,
                     log_path, throwaway)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = ls.log_tail()
            ls.stop()
            raise RuntimeError(f"Label Studio exited with {proc.returncode}:\n{tail}")
        if ready(ls.url, login.token):
            return ls
        time.sleep(1.0)
    tail = ls.log_tail()
    ls.stop()
    raise TimeoutError(f"Label Studio was not ready after {timeout:.0f} s:\n{tail}")
