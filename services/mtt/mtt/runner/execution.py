"""One attempt of a task on a runner, start to end: a fresh work dir and log, the inputs, the command (or the
built-in evaluator) under watch (cancel flag, heartbeat, the queue message kept in progress), what it left
behind collected, the MLflow run closed, the end state and events written."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import structlog
from nats.aio.msg import Msg

from mlife_shared.errors import MLifeError, is_database_unavailable
from mtt.evaluator.evaluate import EvaluationCancelled
from mtt.runner.command import Command, process_spec, task_env
from mtt.runner.context import RunnerContext
from mtt.runner.datasets import resolve
from mtt.runner.evaluation import check_compatible, run_evaluator
from mtt.runner.inputs import fetch_code, fetch_model
from mtt.runner.logs import LogSink
from mtt.runner.mlflow_rest import MlflowError, MlflowRest
from mtt.runner.output import collect
from mtt.runner.result import Incompatible, RunFailed, RunResult
from mtt.runner.tracking import close_run, open_run
from mtt.task.models import Task

log = structlog.get_logger(__name__)
HEARTBEAT_SECONDS = 5


class RunInterrupted(Exception):  # noqa: N818 - not an error of the task's: a reason to run it again
    """The run cannot go on for a reason outside the task (MTT's database unreachable, restarting): the task is
    queued again, not failed."""


class Execution:
    def __init__(self, ctx: RunnerContext, task: Task, msg: Msg | None = None, *, slot: int = 0) -> None:
        self.ctx = ctx
        self.task = task
        self.msg = msg
        self.slot = slot
        self.work = _fresh_work_dir(ctx.settings.work_dir() / f"{task.id}-{task.attempt}")
        self.sink = LogSink(ctx.store, task.id, task.attempt, self.work / "run.log")
        self.cancel = threading.Event()
        self.result = RunResult()
        uri = ctx.settings.mlflow_tracking_uri
        self.mlflow = MlflowRest(uri) if uri else None
        self.artifact_uri: str | None = None

    async def run(self) -> RunResult:
        stop_flush, stop_watch = asyncio.Event(), asyncio.Event()
        flusher = asyncio.create_task(self.sink.run_flusher(self.ctx.settings.log_flush_seconds, stop_flush))
        watcher = asyncio.create_task(self._watch(stop_watch))
        try:
            await self._steps()
        except asyncio.CancelledError:  # the runner is stopping (it queues the task again): stop the helpers
            stop_watch.set()
            stop_flush.set()
            await self._stopped()
            raise
        except Exception as exc:  # noqa: BLE001 - any crash of a run is the run's failure, with its reason
            if is_database_unavailable(exc):  # the platform's fault, not the task's: run it again
                stop_watch.set()
                stop_flush.set()
                await self._stopped(f"the database is unavailable ({type(exc).__name__}); the task is queued again")
                raise RunInterrupted(str(exc)) from exc
            self._failed(exc)
        self.sink.line("succeeded" if self.result.status == "succeeded"
                       else f"{self.result.status}: {self.result.error}")
        await _stop(watcher, stop_watch)
        await _stop(flusher, stop_flush)
        await self.sink.flush()
        self.sink.close()
        await self._close_mlflow()
        async with self.ctx.db.transaction() as session:
            await self.ctx.runs(session).finish(self.task.id, self.task.attempt, self.result)
        if not self.ctx.settings.keep_work_dirs:
            shutil.rmtree(self.work, ignore_errors=True)
        return self.result

    async def _steps(self) -> None:
        task, work, sink = self.task, self.work, self.sink
        sink.line(f"task {task.id} attempt {task.attempt} on runner {self.ctx.id}")
        inside = self.ctx.backend_for(task).workdir_inside if task.command else None
        manifests = await resolve(self.ctx.raw_store, task, work, sink, inside=inside)
        model_path = await fetch_model(self.ctx.raw_store, task, work, sink)
        if not task.command:
            assert model_path is not None
            await check_compatible(task, manifests, model_path, sink)
        if self.mlflow is not None:
            self.artifact_uri = await open_run(self.ctx, self.mlflow, task, manifests)
        if task.command:
            await self._command(manifests, model_path)
        else:
            assert model_path is not None
            await run_evaluator(self.ctx.store, task, manifests, model_path, sink, self.cancel, self.result,
                                batch_size=self.ctx.settings.eval_batch_size)
        await collect(self.ctx.store, self.ctx.settings, task, work, sink, self.result)

    async def _command(self, manifests: list[dict[str, Any]], model_path: Path | None) -> None:
        ctx = self.ctx
        code = await fetch_code(ctx.raw_store, ctx.settings, self.task, self.work, self.sink, runner=ctx.id)
        backend = ctx.backend_for(self.task)
        self.sink.line(f"runner backend {ctx.backend_name_for(self.task)}")
        env = task_env(self.task, self.work, manifests, model_path, backend.workdir_inside)
        spec = process_spec(self.task, self.work, code, env, ctx.settings, self.slot)
        await Command(backend, ctx.settings, self.sink, self.cancel).run(self.task, spec, self.result)

    def _failed(self, exc: Exception) -> None:
        """The run's end state from what stopped it."""
        result, cancelled = self.result, self.cancel.is_set()
        if isinstance(exc, EvaluationCancelled):
            result.status, result.error = "cancelled", "cancelled"
        elif isinstance(exc, Incompatible):
            result.status, result.error, result.incompatible = "failed", f"incompatible: {exc}", True
        elif isinstance(exc, RunFailed | MLifeError | MlflowError):
            result.status = "cancelled" if cancelled else "failed"
            result.error = "cancelled" if cancelled else str(getattr(exc, "message", exc))
        else:
            log.exception("run_failed", task_id=str(self.task.id))
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"

    async def _stopped(self, why: str | None = None) -> None:
        self.sink.line(why or f"runner {self.ctx.id} stopped; the task is queued again")
        with suppress(BaseException):
            await asyncio.shield(self.sink.flush())
        if self.mlflow is not None and self.task.mlflow_run_id:
            with suppress(BaseException):
                await asyncio.shield(self.mlflow.finish(self.task.mlflow_run_id, "KILLED"))

    async def _close_mlflow(self) -> None:
        if self.mlflow is None:
            return
        if self.task.mlflow_run_id:
            await close_run(self.mlflow, self.task, self.result, self.work, self.artifact_uri)
        await self.mlflow.close()

    async def _watch(self, stop: asyncio.Event) -> None:
        """Cancellation flag and heartbeat from the database; keep the queue message in progress."""
        settings = self.ctx.settings
        last_beat = last_progress = time.monotonic()
        while not stop.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.poll_seconds)
                return
            now = time.monotonic()
            with suppress(Exception):
                async with self.ctx.db.transaction() as session:
                    runs = self.ctx.runs(session)
                    if await runs.cancel_wanted(self.task.id):
                        self.cancel.set()
                    if now - last_beat > HEARTBEAT_SECONDS:
                        await runs.heartbeat(self.task.id, self.task.attempt)
                        last_beat = now
            if self.msg is not None and now - last_progress > settings.ack_wait_seconds / 3:
                with suppress(Exception):
                    await self.msg.in_progress()
                last_progress = now


def _fresh_work_dir(work: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    (work / "out").mkdir()
    return work


async def _stop(helper: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    with suppress(BaseException):
        await helper
