"""`python -m mtt runner`: take run requests from the work queue, run each task in a work dir and report.

One run: claim the task (queued → running), resolve its dataset manifests to local files, open its MLflow
run, run the command (or the built-in evaluator) with logs streamed to the store, watch for cancellation and
the timeout, collect what the SDK left in the output folder (metrics, models, results, outcomes), then
write the end state and its events (task.finished/failed, model.uploaded, testing.completed) in one
transaction and ack the message."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout

from mlife_shared.db import Database, utcnow
from mlife_shared.errors import MLifeError
from mlife_shared.events.contracts import TaskFailed, TaskFinished, TestingCompleted
from mlife_shared.messaging import outbox
from mlife_shared.messaging.bus import connect_with_retry
from mlife_shared.objectstore import ObjectStore, ScopedStore, make_store
from mlife_shared.objectstore.base import ObjectNotFound, iterate
from mtt.config import Settings
from mtt.evaluator.compat import incompatibility
from mtt.evaluator.evaluate import EvaluationCancelled, evaluate
from mtt.evaluator.preprocess import parse_preprocess
from mtt.runner.backends import Backend, ContainerLimits, DockerBackend, ProcessSpec, RefusingBackend, SubprocessBackend
from mtt.runner.code import extract
from mtt.runner.datasets import resolve
from mtt.runner.logs import LogSink
from mtt.runner.mlflow_rest import MlflowError, MlflowRest
from mtt.runner.output import collect, metric_history, param_records, regular_files, safe_name
from mtt.runner.queue import RunMessage, dispatch_pending, durable, ensure_consumer, ensure_stream, subject
from mtt.runner.result import Incompatible, RunFailed, RunResult
from mtt.runner.sandbox import SANDBOX_SDK, BwrapBackend, Limits
from mtt.task.models import RunRequest, Task
from mtt.task.repository import TaskRepository
from mtt.task.service import TaskService, announce_testing_failed, code_root_of

log = structlog.get_logger(__name__)

def _sdk_dir() -> Path:
    """The task SDK mounted into sandboxes: the installed `mlife` package (a wheel, or the checkout's editable
    install), else <venv>/lib/mlife, where the MTT image copies it (deploy/Dockerfile.service)."""
    spec = importlib.util.find_spec("mlife")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(sys.prefix) / "lib" / "mlife"


SDK_DIR = _sdk_dir()


def make_backend(settings: Settings) -> Backend:
    """The sandbox user code runs in; a runner without one refuses user code unless an operator opted out."""
    s = settings
    sdk = SDK_DIR if SDK_DIR.is_dir() else None
    if s.runner_backend == "docker":
        return DockerBackend(s.docker_image, sdk_dir=sdk, user=f"{s.sandbox_uid}:{s.sandbox_uid}",
                             network=s.sandbox_network, limits=ContainerLimits(
                                 memory_mb=s.sandbox_memory_mb, cpus=s.docker_cpus, processes=s.sandbox_max_processes,
                                 cpu_seconds=s.sandbox_cpu_seconds, file_mb=s.sandbox_max_file_mb))
    if s.sandbox == "none":
        if not s.allow_unsandboxed:
            return RefusingBackend("MLIFE_MTT_SANDBOX=none runs task code without a sandbox, which needs the "
                                   "operator's explicit opt-out MLIFE_MTT_ALLOW_UNSANDBOXED=true; or use "
                                   "MLIFE_MTT_SANDBOX=bwrap (install bubblewrap)")
        log.warning("runner_unsandboxed", hint="task code runs as the runner's user: MLIFE_MTT_SANDBOX=bwrap")
        return SubprocessBackend()
    return BwrapBackend(
        s.bwrap_path, network=s.sandbox_network, sdk_dir=sdk, ro_paths=list(s.sandbox_ro_paths),
        uid_for_slot=lambda slot: s.sandbox_uid if slot == 0 else s.sandbox_slot_uid_base + slot,
        limits=Limits(memory_mb=s.sandbox_memory_mb, cpu_seconds=s.sandbox_cpu_seconds,
                      processes=s.sandbox_max_processes, file_mb=s.sandbox_max_file_mb))


class Runner:
    def __init__(self, settings: Settings, *, runner_id: str | None = None, queue: str | None = None,
                 backend: Backend | None = None, concurrency: int = 1) -> None:
        self.settings = settings
        self.id = runner_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queue = queue or settings.default_queue
        self.backend = backend or make_backend(settings)
        self.concurrency = concurrency
        self.db = Database(settings.database_url)
        self.raw_store: ObjectStore = make_store(settings)
        self.store = ScopedStore(self.raw_store, "mtt")
        self.nc: NATS | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self.nc = await connect_with_retry(self.settings.nats_url, name=f"mtt-runner-{self.id}", stop=stop,
                                           **self.settings.nats_credentials())
        js = self.nc.jetstream()
        await ensure_stream(js, self.settings)
        await ensure_consumer(js, self.settings, self.queue)
        psub = await js.pull_subscribe(subject(self.settings, self.queue), durable=durable(self.queue),
                                       stream=self.settings.runs_stream)
        log.info("runner_started", runner=self.id, queue=self.queue, backend=self.backend.name)
        slots = asyncio.Semaphore(self.concurrency)
        free = list(range(self.concurrency))  # slot numbers: a sandbox gives each its own uid
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                with suppress(Exception):
                    await dispatch_pending(self.db, js, self.settings)
                if not await _acquire_or_stop(slots, stop):
                    break
                try:
                    msgs = await psub.fetch(1, timeout=self.settings.poll_seconds)
                except (TimeoutError, NatsTimeout):
                    slots.release()
                    continue
                except Exception:  # noqa: BLE001 - NATS hiccup: retry
                    slots.release()
                    await asyncio.sleep(self.settings.poll_seconds)
                    continue
                for msg in msgs:
                    t = asyncio.create_task(self._handle(msg, slots, free))
                    running.add(t)
                    t.add_done_callback(running.discard)
        finally:
            for t in list(running):
                t.cancel()
            for t in list(running):
                with suppress(BaseException):
                    await t
            with suppress(Exception):
                await psub.unsubscribe()
            with suppress(Exception):
                await self.nc.close()  # not drain(): a pull subscription's drain waits out its 30 s timeout
            await self.db.dispose()
            log.info("runner_stopped", runner=self.id)

    async def _handle(self, msg: Msg, slots: asyncio.Semaphore, free: list[int]) -> None:
        slot = free.pop(0)
        try:
            try:
                req = RunMessage.decode(msg.data)
            except (ValueError, KeyError):
                await msg.term()
                return
            task = await self._claim(req)
            if task is None:
                await msg.ack()
                return
            try:
                await self.execute(task, msg, slot=slot)
            except asyncio.CancelledError:  # shutting down: hand the run back to the queue at once
                await asyncio.shield(self._requeue(task, msg))
                raise
            await msg.ack()
        except Exception:  # noqa: BLE001 - left unacked: redelivered after ack_wait, taken over when stale
            log.exception("run_crashed", runner=self.id)
        finally:
            free.append(slot)
            slots.release()

    async def _requeue(self, task: Task, msg: Msg) -> None:
        """A new attempt (its own log and work dir) queued through a new run request; this message is done."""
        with suppress(Exception):
            async with self.db.transaction() as session:
                repo = TaskRepository(session)
                row = await repo.get(task.id, for_update=True)
                if row is not None and row.attempt == task.attempt and row.status == "running":
                    now = utcnow()
                    row.attempt += 1
                    row.status, row.runner_id, row.updated_at, row.queued_at = "queued", None, now, now
                    row.error = f"attempt {task.attempt} stopped with runner {self.id}"
                    await repo.add_run_request(RunRequest(id=uuid.uuid4(), task_id=row.id, attempt=row.attempt,
                                                          queue=row.queue, created_at=now))
            await msg.ack()
            log.info("run_requeued", task_id=str(task.id), runner=self.id)

    async def _claim(self, req: RunMessage) -> Task | None:
        async with self.db.transaction() as session:
            repo = TaskRepository(session)
            task = await repo.get(req.task_id, for_update=True)
            if task is None or task.attempt != req.attempt:
                return None
            if task.status == "running":
                stale = task.heartbeat_at is None or (
                    utcnow() - task.heartbeat_at > timedelta(seconds=self.settings.stale_after_seconds))
                if not stale:
                    return None
            elif task.status != "queued":
                return None
            now = utcnow()
            task.status, task.runner_id, task.started_at, task.heartbeat_at, task.updated_at = (
                "running", self.id, now, now, now)
            return task

    # ---- one run ---------------------------------------------------------------------------------

    async def execute(self, task: Task, msg: Msg | None = None, *, slot: int = 0) -> RunResult:
        s = self.settings
        work = s.work_dir() / f"{task.id}-{task.attempt}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "data").mkdir(parents=True)
        (work / "out").mkdir()
        sink = LogSink(self.store, task.id, task.attempt, work / "run.log")
        stop_flush = asyncio.Event()
        flusher = asyncio.create_task(sink.run_flusher(s.log_flush_seconds, stop_flush))
        cancel = threading.Event()
        watch_stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(task, cancel, watch_stop, msg))
        result = RunResult()
        mlflow = MlflowRest(s.mlflow_tracking_uri) if s.mlflow_tracking_uri else None
        artifact_uri = None
        try:
            sink.line(f"task {task.id} attempt {task.attempt} on runner {self.id}")
            inside = self.backend.workdir_inside if task.command else None
            manifests = await resolve(self.raw_store, task, work, sink, inside=inside)
            model_path = await self._fetch_model(task, work, sink)
            if not task.command:
                await self._check_compatible(task, manifests, model_path, sink)
            if mlflow is not None:
                artifact_uri = await self._open_mlflow(mlflow, task, manifests)
            if task.command:
                await self._run_command(task, work, manifests, model_path, sink, cancel, result, slot)
            else:
                await self._evaluate(task, work, manifests, model_path, sink, cancel, result)
            await collect(self.store, self.settings, task, work, sink, result)
        except asyncio.CancelledError:  # the runner is stopping (see _requeue): stop this run's helpers
            watch_stop.set()
            stop_flush.set()
            sink.line(f"runner {self.id} stopped; the task is queued again")
            with suppress(BaseException):
                await asyncio.shield(sink.flush())
            if mlflow is not None and task.mlflow_run_id:
                with suppress(BaseException):
                    await asyncio.shield(mlflow.finish(task.mlflow_run_id, "KILLED"))
            raise
        except EvaluationCancelled:
            result.status, result.error = "cancelled", "cancelled"
        except Incompatible as exc:
            result.status, result.error, result.incompatible = "failed", f"incompatible: {exc}", True
        except (RunFailed, MLifeError, MlflowError) as exc:
            result.status = "cancelled" if cancel.is_set() else "failed"
            result.error = "cancelled" if cancel.is_set() else str(getattr(exc, "message", exc))
        except Exception as exc:  # noqa: BLE001 - any crash of a run is the run's failure, with its reason
            log.exception("run_failed", task_id=str(task.id))
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        if result.status != "succeeded":
            sink.line(f"{result.status}: {result.error}")
        else:
            sink.line("succeeded")
        watch_stop.set()
        with suppress(BaseException):
            await watcher
        stop_flush.set()
        with suppress(BaseException):
            await flusher
        await sink.flush()
        sink.close()
        if mlflow is not None and task.mlflow_run_id:
            await self._close_mlflow(mlflow, task, result, work, artifact_uri)
        if mlflow is not None:
            await mlflow.close()
        await self._finish(task, result)
        if not s.keep_work_dirs:
            shutil.rmtree(work, ignore_errors=True)
        return result

    async def _watch(self, task: Task, cancel: threading.Event, stop: asyncio.Event, msg: Msg | None) -> None:
        """Cancellation flag and heartbeat from the database; keep the queue message in progress."""
        last_beat = last_progress = time.monotonic()
        while not stop.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)
                return
            now = time.monotonic()
            with suppress(Exception):
                async with self.db.transaction() as session:
                    repo = TaskRepository(session)
                    flags = await repo.refresh_flags(task.id)
                    if flags is None or flags[1]:
                        cancel.set()
                    if now - last_beat > 5:
                        await repo.heartbeat(task.id, task.attempt)
                        last_beat = now
            if msg is not None and now - last_progress > self.settings.ack_wait_seconds / 3:
                with suppress(Exception):
                    await msg.in_progress()
                last_progress = now

    async def _open_mlflow(self, mlflow: MlflowRest, task: Task, manifests: list[dict[str, Any]]) -> str:
        exp = await mlflow.experiment_id(f"{self.settings.mlflow_experiment}-{task.kind}")
        info = await mlflow.create_run(exp, f"{task.name} #{task.attempt}"[:250], {
            "mlife.task_id": str(task.id), "mlife.kind": task.kind, "mlife.attempt": str(task.attempt),
            "mlflow.user": task.owner or "mlife"})
        run_id = info["run_id"]
        params = {f"param.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in task.params.items()}
        params.update({"mlife.command": task.command or "(built-in evaluator)", "mlife.code_location":
                       task.code_location or "", "mlife.runner": self.id})
        if task.model:
            params.update({"mlife.model": f"{task.model['name']}:{task.model['version']}"})
        await mlflow.log_batch(run_id, params=params)
        await mlflow.log_inputs(run_id, [{"name": f"dataset-{m['dataset_id']}", "digest": m["digest"],
                                          "source": m["manifest_key"],
                                          "context": "training" if m.get("purpose") == "train" else "testing"}
                                         for m in manifests])
        task.mlflow_experiment_id, task.mlflow_run_id = exp, run_id
        async with self.db.transaction() as session:
            row = await TaskRepository(session).get(task.id)
            if row is not None:
                row.mlflow_experiment_id, row.mlflow_run_id = exp, run_id
        return str(info.get("artifact_uri", ""))

    async def _fetch_model(self, task: Task, work: Path, sink: LogSink) -> Path | None:
        """The task's model into `<work>/model/` (a testing task's: the built-in evaluator runs it, your own code
        gets its path as `MLIFE_MODEL_PATH`)."""
        if not task.model:
            if not task.command:
                raise RunFailed("a test task without a command needs a model")
            return None
        key = task.model["object_key"]
        name = "model.onnx" if not task.command else safe_name(key.rsplit("/", 1)[-1])
        path = work / "model" / name
        path.parent.mkdir(exist_ok=True)
        try:
            stream = await self.raw_store.get(key)
        except ObjectNotFound as exc:
            raise RunFailed(f"the model file {key!r} is missing") from exc
        with path.open("wb") as fh:
            async for chunk in stream:
                fh.write(chunk)
        sink.line(f"model {task.model['name']} v{task.model['version']}: {path.stat().st_size} bytes")
        return path

    async def _check_compatible(self, task: Task, manifests: list[dict[str, Any]], model_path: Path | None,
                                sink: LogSink) -> None:
        """Before the built-in evaluator runs: can the model take every item (modality, size, input shape)?"""
        assert model_path is not None
        items = [it for m in manifests for it in m["items"]]
        reason = await asyncio.to_thread(incompatibility, items, model_path, dict(task.params))
        if reason is not None:
            raise Incompatible(reason)
        sink.line(f"the model can take the {len(items)} items")

    def _env(self, task: Task, work: Path, manifests: list[dict[str, Any]],
             model_path: Path | None = None) -> dict[str, str]:
        """Only the task's own variables (an allow-list, nothing of the runner's environment but LANG), with the
        paths as the command sees them. No credential, no MLflow address: the command reports through files."""
        inside = self.backend.workdir_inside

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

    async def _run_command(self, task: Task, work: Path, manifests: list[dict[str, Any]], model_path: Path | None,
                           sink: LogSink, cancel: threading.Event, result: RunResult, slot: int = 0) -> None:
        import shlex

        code = work / "code"
        location = task.code_location or ""
        if location.startswith("store:"):
            archive = work / "code-archive"
            try:
                stream = await self.raw_store.get(location[len("store:"):])
            except ObjectNotFound as exc:
                raise RunFailed(f"the code archive {location!r} is missing") from exc
            with archive.open("wb") as fh:
                async for chunk in stream:
                    fh.write(chunk)
            count = await asyncio.to_thread(extract, archive, code)
            sink.line(f"code: {count} files from {location}")
        else:
            # re-checked here, on the real path: a link inside a root may lead out of it; links inside the folder
            # are copied as links (the sandbox resolves them against its own filesystem)
            src = code_root_of(location, self.settings.code_roots, runner=self.id)
            await asyncio.to_thread(shutil.copytree, src, code, symlinks=True,
                                    ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "mlife-output"))
        spec = ProcessSpec(task_id=str(task.id), argv=shlex.split(task.command or ""), workdir=work, cwd=code,
                           env=self._env(task, work, manifests, model_path),
                           kill_grace_seconds=self.settings.kill_grace_seconds, slot=slot)
        if self.backend.notice:
            sink.line(self.backend.notice)
        sink.line(f"$ {task.command}")
        proc = await self.backend.start(spec)

        async def pump() -> None:
            while True:
                chunk = await proc.read()
                if not chunk:
                    return
                sink.write(chunk)

        reader = asyncio.create_task(pump())
        waiter = asyncio.create_task(proc.wait())
        timeout = task.timeout_seconds or self.settings.task_timeout_seconds
        deadline = time.monotonic() + timeout
        reason = None
        try:
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=self.settings.poll_seconds)
                if waiter.done():
                    break
                if proc.exited() is not None:  # the command ended; what it started must not hold its output
                    await proc.cleanup()
                    continue
                if cancel.is_set():
                    reason = "cancelled"
                elif time.monotonic() > deadline:
                    reason = f"timed out after {timeout:g} s"
                if reason:
                    sink.line(f"{reason}: stopping the process group")
                    await proc.kill()
                    break
        except asyncio.CancelledError:  # the runner is shutting down: no orphan; the queue redelivers the run
            await asyncio.shield(proc.kill())
            await proc.cleanup()
            raise
        code_ = await waiter
        await proc.cleanup()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader, 5)
        reader.cancel()
        result.exit_code = code_
        sink.line(f"exit code {code_}")
        if reason == "cancelled":
            result.status, result.error = "cancelled", "cancelled"
            raise EvaluationCancelled()
        if reason:
            raise RunFailed(reason)
        if code_ != 0:
            raise RunFailed(f"the command exited with code {code_}")

    async def _evaluate(self, task: Task, work: Path, manifests: list[dict[str, Any]], path: Path | None,
                        sink: LogSink, cancel: threading.Event, result: RunResult) -> None:
        assert task.model and path is not None
        items = [it for m in manifests for it in m["items"]]
        prep = parse_preprocess(task.params["preprocess"], where="params.preprocess") \
            if "preprocess" in task.params else None
        sink.line(f"evaluating {task.model['name']}:{task.model['version']} on {len(items)} samples")
        if task.params.get("evaluator") == "detection":
            from mtt.evaluator.detection import DetectionParams, evaluate_detection

            if prep is None:
                raise RunFailed("object detection needs params.preprocess (declared, not guessed)")
            try:
                det = DetectionParams.model_validate(task.params.get("detection") or {})
            except ValueError as exc:
                raise RunFailed(f"params.detection is invalid: {exc}") from exc
            ev = await asyncio.to_thread(evaluate_detection, path, items, prep, det, cancel=cancel)
        else:
            ev = await asyncio.to_thread(evaluate, path, items, prep, batch_size=self.settings.eval_batch_size,
                                         cancel=cancel, params=task.params)
        sink.line("metrics " + json.dumps(ev.metrics))
        key = f"tasks/{task.id}/outcomes/{task.attempt}.jsonl"
        stored = await self.store.put(key, iterate(ev.outcomes_jsonl()), content_type="application/x-ndjson")
        await self.store.put(f"tasks/{task.id}/evaluation/{task.attempt}.json",
                             iterate(json.dumps(ev.report()).encode()), content_type="application/json")
        result.metrics.update(ev.metrics)
        result.evaluation = ev.report()
        result.outcomes_key = self.store.full_key(key)
        result.artifacts.append({"kind": "outcomes", "key": result.outcomes_key, "size": stored.size})
        result.dataset_id = uuid.UUID(manifests[0]["dataset_id"]) if manifests else None

    async def _close_mlflow(self, mlflow: MlflowRest, task: Task, result: RunResult, work: Path,
                            artifact_uri: str | None) -> None:
        assert task.mlflow_run_id
        try:
            # the command has no network: the metrics it logged (each step) and its params reach the run from here
            history = metric_history(work / "out")
            await mlflow.log_records(task.mlflow_run_id, metrics=history)
            logged = {r["key"] for r in history}
            rest = {k: v for k, v in result.metrics.items() if k not in logged}
            if rest:
                await mlflow.log_batch(task.mlflow_run_id, metrics=rest)
            params = param_records(work / "out")
            for i in range(0, len(params), 100):
                try:
                    await mlflow.log_records(task.mlflow_run_id, params=params[i:i + 100])
                except MlflowError as exc:  # e.g. a param logged twice with two values: the run stands
                    log.warning("mlflow_params_refused", task_id=str(task.id), error=str(exc))
            if artifact_uri:
                await mlflow.upload_artifact(artifact_uri, work / "run.log", "logs/run.log")
                for m in regular_files(work / "out", "models/*/*"):
                    await mlflow.upload_artifact(artifact_uri, m, f"models/{m.parent.name}/{m.name}")
                if result.evaluation is not None:
                    ev = work / "evaluation.json"
                    ev.write_text(json.dumps(result.evaluation))
                    await mlflow.upload_artifact(artifact_uri, ev, "evaluation.json")
            await mlflow.finish(task.mlflow_run_id, {"succeeded": "FINISHED", "cancelled": "KILLED"}
                                .get(result.status, "FAILED"))
        except (MlflowError, OSError, Exception) as exc:  # noqa: BLE001 - the run's result stands; say so
            log.warning("mlflow_close_failed", task_id=str(task.id), error=str(exc))
            if result.status == "succeeded":
                result.status, result.error = "failed", f"MLflow: {exc}"

    async def _finish(self, task: Task, result: RunResult) -> None:
        async with self.db.transaction() as session:
            row = await TaskRepository(session).get(task.id, for_update=True)
            if row is None or row.attempt != task.attempt:
                return
            now = utcnow()
            row.status, row.error, row.exit_code = result.status, result.error, result.exit_code
            row.metrics = result.metrics
            row.evaluation = result.evaluation
            row.outcomes_key = result.outcomes_key
            row.artifacts = result.artifacts
            row.finished_at, row.updated_at, row.heartbeat_at = now, now, now
            if result.status == "succeeded":
                if result.models:
                    splits = await TaskService(session, self.settings, self.raw_store).test_splits(row)
                    for m in result.models:
                        await outbox.add(session, m.model_copy(update={"function": row.function,
                                                                       "test_dataset_ids": splits}))
                if row.kind == "test" and result.outcomes_key and row.model:
                    await outbox.add(session, TestingCompleted(
                        task_id=row.id, model_name=row.model["name"], model_version=row.model["version"],
                        dataset_id=result.dataset_id, function=row.function, metrics=result.metrics,
                        outcomes_key=result.outcomes_key, model_version_id=row.model_version_id,
                        set_kind=row.set_kind or "other"))  # type: ignore[arg-type]
                await outbox.add(session, TaskFinished(task_id=row.id, kind=row.kind,  # type: ignore[arg-type]
                                                       metrics=result.metrics))
            else:
                reason = (result.error or result.status)[:2000]
                await outbox.add(session, TaskFailed(task_id=row.id, kind=row.kind,  # type: ignore[arg-type]
                                                     reason=reason))
                await announce_testing_failed(session, row, reason, incompatible=result.incompatible)


async def _acquire_or_stop(slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    """Take a free slot (True), or see `stop` first (False, no slot held)."""
    acquire = asyncio.create_task(slots.acquire())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not acquire.done():
        acquire.cancel()
        with suppress(asyncio.CancelledError):
            await acquire
    if acquire.done() and not acquire.cancelled():
        if stop.is_set():
            slots.release()
            return False
        return True
    return False


async def main(settings: Settings, *, queue: str | None, concurrency: int, runner_id: str | None) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await Runner(settings, runner_id=runner_id, queue=queue, concurrency=concurrency).run(stop)
