"""The task's own command: which sandbox runs it, the environment it sees, and its supervision (log pump,
cancellation, timeout, the whole process group killed)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import structlog

from mlife_shared.plugins.seams.runners import RunnerUnavailable
from mtt.config import Settings
from mtt.evaluator.evaluate import EvaluationCancelled
from mtt.runner.backends import Backend, ProcessSpec, RunningProcess
from mtt.runner.logs import LogSink
from mtt.runner.plugins import SDK_DIR, make_backend
from mtt.runner.result import RunFailed, RunResult
from mtt.runner.sandbox import SANDBOX_SDK
from mtt.task.models import Task

__all__ = ["SDK_DIR", "Command", "make_backend", "process_spec", "task_env"]
log = structlog.get_logger(__name__)


def task_env(task: Task, work: Path, manifests: list[dict[str, Any]], model_path: Path | None,
             inside: str | None) -> dict[str, str]:
    """Only the task's own variables (an allow-list, nothing of the runner's environment but LANG), with the
    paths as the command sees them (`inside` the sandbox). No credential, no MLflow address: the command reports
    through files."""

    def at(path: Path) -> str:
        return f"{inside}/{path.relative_to(work).as_posix()}" if inside else str(path)

    python_bin = str(Path(sys.executable).parent)
    env = {"PATH": os.pathsep.join([python_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
           "HOME": at(work / "home"), "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1"}
    if SDK_DIR.is_dir():
        env["PYTHONPATH"] = SANDBOX_SDK if inside else str(SDK_DIR.parent)
    env.update({
        "MLIFE_TASK_ID": str(task.id), "MLIFE_TASK_KIND": task.kind, "MLIFE_TASK_ATTEMPT": str(task.attempt),
        "MLIFE_TASK_PARAMS": json.dumps(task.params), "MLIFE_OUTPUT_DIR": at(work / "out"),
        "MLIFE_WORK_DIR": inside or str(work),
        "MLIFE_DATASET_MANIFEST": at(Path(manifests[0]["local_manifest"])) if manifests else "",
        "MLIFE_DATASET_MANIFESTS": json.dumps({m["dataset_id"]: {"purpose": m.get("purpose"),
                                                                 "manifest": at(Path(m["local_manifest"]))}
                                               for m in manifests}),
    })
    if task.model:
        env["MLIFE_MODEL_NAME"], env["MLIFE_MODEL_VERSION"] = task.model["name"], task.model["version"]
    if model_path is not None:
        env["MLIFE_MODEL_PATH"] = at(model_path)
    return env


class Command:
    """One start of the task's command in `backend`, its output into `sink`."""

    def __init__(self, backend: Backend, settings: Settings, sink: LogSink, cancel: threading.Event) -> None:
        self.backend = backend
        self.settings = settings
        self.sink = sink
        self.cancel = cancel

    async def run(self, task: Task, spec: ProcessSpec, result: RunResult) -> None:
        """Run to its end; a cancellation, a timeout or a non-zero exit code ends the run."""
        if self.backend.notice:
            self.sink.line(self.backend.notice)
        self.sink.line(f"$ {task.command}")
        try:
            proc = await self.backend.start(spec)
        except RunnerUnavailable as exc:  # the backend cannot run code here (a tool, an engine, not allowed)
            raise RunFailed(str(exc)) from exc
        reader = asyncio.create_task(self._pump(proc))
        waiter = asyncio.create_task(proc.wait())
        reason = await self._supervise(proc, waiter, task.timeout_seconds or self.settings.task_timeout_seconds)
        exit_code = await waiter
        await proc.cleanup()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader, 5)
        reader.cancel()
        result.exit_code = exit_code
        self.sink.line(f"exit code {exit_code}")
        if reason == "cancelled":
            result.status, result.error = "cancelled", "cancelled"
            raise EvaluationCancelled()
        if reason:
            raise RunFailed(reason)
        if exit_code != 0:
            raise RunFailed(f"the command exited with code {exit_code}")

    async def _pump(self, proc: RunningProcess) -> None:
        while chunk := await proc.read():
            self.sink.write(chunk)

    async def _supervise(self, proc: RunningProcess, waiter: asyncio.Task[int], timeout: float) -> str | None:
        """Wait for the command; → why it was stopped (cancelled, timed out), or None when it ended by itself."""
        deadline = time.monotonic() + timeout
        try:
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=self.settings.poll_seconds)
                if waiter.done():
                    break
                if proc.exited() is not None:  # the command ended; what it started must not hold its output
                    await proc.cleanup()
                    continue
                reason = "cancelled" if self.cancel.is_set() else (
                    f"timed out after {timeout:g} s" if time.monotonic() > deadline else None)
                if reason:
                    self.sink.line(f"{reason}: stopping the process group")
                    await proc.kill()
                    return reason
        except asyncio.CancelledError:  # the runner is shutting down: no orphan; the queue redelivers the run
            await asyncio.shield(proc.kill())
            await proc.cleanup()
            raise
        return None


def process_spec(task: Task, work: Path, code: Path, env: dict[str, str], settings: Settings, slot: int) -> ProcessSpec:
    return ProcessSpec(task_id=str(task.id), argv=shlex.split(task.command or ""), workdir=work, cwd=code, env=env,
                       kill_grace_seconds=settings.kill_grace_seconds, slot=slot)
