"""`mlflow server ...` in one process (run by MLflow's own venv Python, not MLife's: it imports nothing of MLife).

`mlflow server` checks its options, prepares its stores and then starts uvicorn as a child of its own, which it
waits on: a whole second MLflow interpreter (~200 MiB) idle all along. Here the same command replaces itself with
that uvicorn (exec: same pid, same process group) once its preparation is done. With MLflow's job execution on,
the server process also supervises the job runner: then nothing is changed."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def _exec_instead(cmd: list[str], extra_env: dict[str, str] | None = None, **_: Any) -> None:
    os.execvpe(cmd[0], cmd, {**os.environ, **(extra_env or {})})


def main() -> None:
    if os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "").lower() not in ("true", "1"):
        setattr(importlib.import_module("mlflow.server"), "_exec_cmd", _exec_instead)  # noqa: B010
    cli = importlib.import_module("mlflow.cli").cli
    sys.argv[0] = "mlflow"
    sys.exit(cli())


if __name__ == "__main__":
    main()
