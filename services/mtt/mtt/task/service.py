"""Tasks: create (by users and from events), change, queue, cancel. Never commits: the caller's unit of work does."""

from __future__ import annotations

import asyncio
import shlex
import tempfile
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.events.contracts import TaskCreated, TaskFailed
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ObjectStore
from mlife_shared.objectstore.base import InvalidKey, validate_key
from mlife_shared.onnx_safety import inspect_onnx
from mtt.config import Settings
from mtt.evaluator.preprocess import check_input_shape, parse_preprocess
from mtt.runner.mlflow_rest import run_url
from mtt.task.exceptions import InvalidTask, TaskNotFound, TaskStateConflict
from mtt.task.models import TERMINAL, RunRequest, Task
from mtt.task.repository import TaskRepository
from mtt.task.schemas import DatasetRef, ModelRef, TaskCreate, TaskRead, TaskUpdate

log = structlog.get_logger(__name__)


def _key(value: str, what: str) -> str:
    try:
        return validate_key(value)
    except InvalidKey as exc:
        raise InvalidTask(f"{what} {value[:200]!r} is not a valid object key: {exc.message}") from exc


STORE_PREFIX = "store:"


def check_code_location(location: str) -> str:
    """An absolute folder (on the runners' machines too) or `store:<key>` of an uploaded archive."""
    if location.startswith(STORE_PREFIX):
        _key(location[len(STORE_PREFIX):], "code_location")
        return location
    if "\x00" in location:
        raise InvalidTask("code_location contains a NUL byte")
    path = Path(location)
    if not path.is_absolute():
        raise InvalidTask(f"code_location {location!r} must be an absolute folder path")
    if not path.is_dir():
        raise InvalidTask(f"code_location {location!r} is not an existing folder")
    return str(path)


def check_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidTask(f"the command does not parse: {exc}") from exc
    if not argv:
        raise InvalidTask("the command is empty")
    return argv


def runnable(task: Task) -> str | None:
    """Why the task cannot run yet, or None."""
    if task.command and not task.code_location:
        return "the command has no code location: set code_location"
    if task.kind == "train" and not task.command:
        return "set code_location and command (the training code to run)"
    if task.kind == "test" and not task.command and not task.model:
        return "set the model to test (or a command for your own testing code)"
    return None


class TaskService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore, prefix: str = "mtt") -> None:
        self.session = session
        self.settings = settings
        self.store = store
        self.prefix = prefix
        self.repo = TaskRepository(session)

    async def get(self, task_id: uuid.UUID, *, for_update: bool = False) -> Task:
        task = await self.repo.get(task_id, for_update=for_update)
        if task is None:
            raise TaskNotFound(f"no task {task_id}")
        return task

    def read(self, task: Task) -> TaskRead:
        out = TaskRead.model_validate(task, from_attributes=True)
        out.mlflow_url = run_url(self.settings.mlflow_ui_url or self.settings.mlflow_tracking_uri,
                                 task.mlflow_experiment_id, task.mlflow_run_id)
        return out

    async def _datasets(self, refs: list[DatasetRef], kind: str) -> list[dict[str, Any]]:
        out = []
        for ref in refs:
            known = await self.repo.dataset(ref.dataset_id)
            key = ref.manifest_key or (known.manifest_key if known else None)
            if key is None:
                raise InvalidTask(f"dataset {ref.dataset_id} is unknown to MTT (no dataset.grouped seen): "
                                  "give its manifest_key")
            _key(key, "manifest_key")
            if await self.store.stat(key) is None:
                raise InvalidTask(f"the manifest {key!r} of dataset {ref.dataset_id} does not exist")
            out.append({"dataset_id": str(ref.dataset_id), "manifest_key": key,
                        "purpose": ref.purpose or (known.purpose if known else kind),
                        "version": known.version if known else None,
                        "is_badcase_test_set": bool(known.is_badcase_test_set) if known else False})
        return out

    async def _model(self, ref: ModelRef | None, model_name: str | None) -> dict[str, Any] | None:
        if ref is None and model_name:
            latest = await self.repo.latest_model(model_name)
            if latest is None:
                raise InvalidTask(f"no registered version of model {model_name!r} is known to MTT")
            ref = ModelRef(name=latest.name, version=latest.version, object_key=latest.object_key,
                           format=latest.format, model_version_id=latest.model_version_id)
        if ref is None:
            return None
        _key(ref.object_key, "model object_key")
        if await self.store.stat(ref.object_key) is None:
            raise InvalidTask(f"the model file {ref.object_key!r} does not exist")
        return ref.model_dump(mode="json")

    async def check_model(self, model: dict[str, Any], params: dict[str, Any]) -> None:
        """Fetch the model and inspect it (nothing in it runs): not ONNX, escaping external data or an input
        shape that the declared preprocessing cannot feed → 422 now rather than a failed run later."""
        if model.get("format", "onnx") != "onnx":
            raise InvalidTask(f"the built-in evaluator runs ONNX models; this one is {model.get('format')!r}")
        info = await self.store.stat(model["object_key"])
        if info is not None and info.size > self.settings.max_model_bytes:
            raise InvalidTask(f"the model is {info.size} bytes; the limit is {self.settings.max_model_bytes}")
        with tempfile.TemporaryDirectory(prefix="mtt-model-") as tmp:
            path = Path(tmp) / "model.onnx"
            with path.open("wb") as fh:
                async for chunk in await self.store.get(model["object_key"]):
                    fh.write(chunk)
            onnx_info = await asyncio.to_thread(inspect_onnx, path)
            prep = params.get("preprocess")
            if prep is None:
                from mtt.evaluator.evaluate import declared_in_model

                declared = await asyncio.to_thread(declared_in_model, path)
            else:
                declared = parse_preprocess(prep, where="params.preprocess")
        if declared is not None:
            inputs = {t.name: t for t in onnx_info.inputs}
            name = declared.input_name or (onnx_info.inputs[0].name if len(onnx_info.inputs) == 1 else None)
            if name not in inputs:
                raise InvalidTask(f"set params.preprocess.input_name to one of {sorted(inputs)}")
            check_input_shape(declared, inputs[name].shape, name)

    async def create(self, body: TaskCreate, owner: str | None, *, origin: str = "api", dedup_key: str | None = None,
                     inspect_model: bool = True) -> Task:
        if body.command is not None:
            check_command(body.command)
            if not body.code_location:
                raise InvalidTask("a command needs a code location: set code_location to the folder of your code")
        code = check_code_location(body.code_location) if body.code_location else None
        if code and code.startswith(STORE_PREFIX) and await self.store.stat(code[len(STORE_PREFIX):]) is None:
            raise InvalidTask(f"the code archive {code!r} does not exist")
        if "preprocess" in body.params:
            parse_preprocess(body.params["preprocess"], where="params.preprocess")
        datasets = await self._datasets(body.datasets, body.kind)
        model = await self._model(body.model, body.model_name) if body.kind == "test" or body.model else None
        if model is not None and body.kind == "test" and not body.command and inspect_model:
            await self.check_model(model, body.params)
        task = Task(id=uuid.uuid4(), kind=body.kind, name=body.name or f"{body.kind} {datasets[0]['dataset_id'][:8]}",
                    status="draft", owner=owner, origin=origin, dedup_key=dedup_key, datasets=datasets, model=model,
                    function=body.function, code_location=code, command=body.command, params=dict(body.params),
                    queue=body.queue, timeout_seconds=body.timeout_seconds, attempt=0, cancel_requested=False,
                    metrics={}, artifacts=[], created_at=utcnow(), updated_at=utcnow())
        task.status = "ready" if runnable(task) is None else "draft"
        if body.run and task.status != "ready":
            raise InvalidTask(f"the task cannot run: {runnable(task)}")
        await self.repo.add(task)
        await outbox.add(self.session, TaskCreated(task_id=task.id, kind=task.kind))  # type: ignore[arg-type]
        if body.run:
            await self.enqueue(task)
        return task

    async def update(self, task: Task, body: TaskUpdate) -> Task:
        if task.status in ("queued", "running"):
            raise TaskStateConflict(f"the task is {task.status}; cancel it before changing it")
        fields = body.model_fields_set
        if "command" in fields and body.command is not None:
            check_command(body.command)
        if "code_location" in fields:
            task.code_location = check_code_location(body.code_location) if body.code_location else None
            if task.code_location and task.code_location.startswith(STORE_PREFIX) and \
                    await self.store.stat(task.code_location[len(STORE_PREFIX):]) is None:
                raise InvalidTask(f"the code archive {task.code_location!r} does not exist")
        if "command" in fields:
            task.command = body.command
        if task.command and not task.code_location:
            raise InvalidTask("a command needs a code location: set code_location to the folder of your code")
        if "params" in fields and body.params is not None:
            if "preprocess" in body.params:
                parse_preprocess(body.params["preprocess"], where="params.preprocess")
            task.params = dict(body.params)
        if "name" in fields and body.name is not None:
            task.name = body.name
        if "timeout_seconds" in fields:
            task.timeout_seconds = body.timeout_seconds
        if "model" in fields:
            task.model = await self._model(body.model, None)
        if task.model and task.kind == "test" and not task.command and ({"model", "params"} & fields):
            await self.check_model(task.model, task.params)
        if task.status in ("draft", "ready"):
            task.status = "ready" if runnable(task) is None else "draft"
        task.updated_at = utcnow()
        return task

    def set_code_archive(self, task: Task, key: str) -> Task:
        if task.status in ("queued", "running"):
            raise TaskStateConflict(f"the task is {task.status}; cancel it before changing its code")
        task.code_location = STORE_PREFIX + key
        if task.status in ("draft", "ready"):
            task.status = "ready" if runnable(task) is None else "draft"
        task.updated_at = utcnow()
        return task

    async def enqueue(self, task: Task) -> Task:
        if task.status in ("queued", "running"):
            raise TaskStateConflict(f"the task is already {task.status}")
        why = runnable(task)
        if why is not None:
            raise TaskStateConflict(f"the task cannot run: {why}")
        now = utcnow()
        task.attempt += 1
        task.status, task.queued_at, task.updated_at = "queued", now, now
        task.cancel_requested, task.error, task.exit_code, task.runner_id = False, None, None, None
        task.started_at = task.finished_at = None
        await self.repo.add_run_request(RunRequest(id=uuid.uuid4(), task_id=task.id, attempt=task.attempt,
                                                   queue=task.queue, created_at=now))
        return task

    async def requeue_stale(self) -> int:
        """Runs whose runner went silent (no heartbeat for `stale_after_seconds`): a new attempt is queued."""
        from datetime import timedelta

        now = utcnow()
        stale = await self.repo.stale_running(now - timedelta(seconds=self.settings.stale_after_seconds))
        for task in stale:
            old, runner = task.attempt, task.runner_id or "?"
            task.status = "ready"
            if task.cancel_requested:
                task.status, task.finished_at, task.error = "cancelled", now, "cancelled (its runner went silent)"
                await outbox.add(self.session, TaskFailed(task_id=task.id, kind=task.kind,  # type: ignore[arg-type]
                                                          reason="cancelled"))
                continue
            await self.enqueue(task)
            task.error = f"attempt {old} lost its runner {runner}"
        return len(stale)

    async def cancel(self, task: Task, who: str) -> Task:
        if task.status in TERMINAL:
            raise TaskStateConflict(f"the task already ended ({task.status})")
        now = utcnow()
        if task.status == "running":
            task.cancel_requested, task.updated_at = True, now  # the runner kills the process group
            return task
        task.status, task.finished_at, task.updated_at, task.error = "cancelled", now, now, f"cancelled by {who}"
        await outbox.add(self.session, TaskFailed(task_id=task.id, kind=task.kind,  # type: ignore[arg-type]
                                                  reason=f"cancelled by {who}"))
        return task
