"""The `mlife` command against the stack (tests.support.stack), as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import Stack


def mlife(stack: Stack, home: Path, *args: str, role: str | None = "tester", stdin: str | None = None,
          token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIFE_")}
    env.update(HOME=str(home), MLIFE_URL=stack.url)
    if role is not None:
        env["MLIFE_TOKEN"] = token or stack.tokens[role]
    return subprocess.run([sys.executable, "-m", "mlife.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)
