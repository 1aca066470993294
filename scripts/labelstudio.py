"""A real Label Studio for DAM's tests and for development: installed in its own venv
(`.venv-labelstudio`, or $MLIFE_LABELSTUDIO_VENV; pinned version) when missing, started on 127.0.0.1 on a free
port with its data in a temporary folder, a user and a legacy API token created non-interactively, and waited
for. The management itself is mlife/labelstudio.py (which `mlife up --label-studio` uses too).

    .venv/bin/python scripts/labelstudio.py        # start one, print its URL and token, stop on Ctrl-C

Tests use `start()` / `LabelStudio.stop()` (tests/dam/conftest.py, a session fixture)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from mlife import labelstudio
from mlife.labelstudio import VERSION, LabelStudio

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MLIFE_LABELSTUDIO_VENV") or ROOT / ".venv-labelstudio")

__all__ = ["VENV", "VERSION", "LabelStudio", "ensure_installed", "start"]


def ensure_installed() -> Path:
    """The `label-studio` executable, installing the pinned version into its own venv if needed."""
    return labelstudio.ensure_installed(VENV)


def start(*, timeout: float = 600.0, login: labelstudio.Login | None = None) -> LabelStudio:
    return labelstudio.start(VENV, timeout=timeout, login=login)


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
