"""Tasks: create (by users and from events), change, queue, cancel. Never commits: the caller's unit of work does."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.events.contracts import SetKind, TaskCreated, TaskFailed, TestingFailed
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ObjectStore, ScopedStore
from mlife_shared.onnx_safety import inspect_onnx
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import plugins
from mlife_shared.plugins.seams.evaluators import Evaluator
from mtt.config import Settings
from mtt.evaluator.preprocess import main_input, parse_preprocess
from mtt.files import download, file_chunks, spool
from mtt.runner.mlflow_rest import run_url
from mtt.runner.plugins import check_requested
from mtt.task.exceptions import InvalidTask, TaskNotFound, TaskStateConflict
from mtt.task.models import TERMINAL, RunRequest, Task
from mtt.task.repository import TaskRepository
from mtt.task.schemas import DatasetRef, ModelRef, TaskCreate, TaskRead, TaskUpdate
from mtt.task.validation import (
    STORE_PREFIX,
    check_archive,
    check_code_location,
    check_command,
    check_key,
    runnable,
    settle,
)

ACTIVE = ("queued", "running")


def named_evaluator(params: dict[str, Any]) -> Evaluator | None:
    """The active evaluator plugin `params.evaluator` names (None when it names none; a 422 naming the active
    ones when it is not active)."""
    name = params.get("evaluator")
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise InvalidTask(f"params.evaluator is {name!r}: name an evaluator (GET /api/mtt/plugins lists them)")
    evaluator: Evaluator = plugins(*seams_of("mtt")).get("evaluators", name)
    return evaluator


def _not_active(task: Task, doing: str) -> None:
    if task.status in ACTIVE:
        raise TaskStateConflict(f"the task is {task.status}; cancel it before {doing}")


def _version_id(model: dict[str, Any] | None) -> uuid.UUID | None:
    return uuid.UUID(model["model_version_id"]) if model and model.get("model_version_id") else None


class TaskService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore, prefix: str = "mtt") -> None:
        self.session = session
        self.settings = settings
        self.store = store
        self.own = ScopedStore(store, prefix)
        self.prefix = prefix
        self.repo = TaskRepository(session)

    async def get(self, task_id: uuid.UUID, *, for_update: bool = False) -> Task:
        task = await self.repo.task(task_id, for_update=for_update)
        if task is None:
            raise TaskNotFound(f"no task {task_id}")
        return task

    async def search(self, *, kind: str | None, status: str | None, function: str | None,
                     model_version_id: uuid.UUID | None, limit: int) -> list[Task]:
        return list(await self.repo.tasks(kind=kind, status=status, function=function,
                                          model_version_id=model_version_id, limit=limit))

    def read(self, task: Task) -> TaskRead:
        out = TaskRead.model_validate(task, from_attributes=True)
        out.mlflow_url = run_url(self.settings.mlflow_ui_url or self.settings.mlflow_tracking_uri,
                                 task.mlflow_experiment_id, task.mlflow_run_id)
        return out

    # ---- what a task refers to -------------------------------------------------------------------

    async def _datasets(self, refs: Sequence[DatasetRef], kind: str) -> list[dict[str, Any]]:
        out = []
        for ref in refs:
            known = await self.repo.dataset(ref.dataset_id)
            key = ref.manifest_key or (known.manifest_key if known else None)
            if key is None:
                raise InvalidTask(f"dataset {ref.dataset_id} is unknown to MTT (no dataset.grouped seen): "
                                  "give its manifest_key")
            check_key(key, "manifest_key")
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
        check_key(ref.object_key, "model object_key")
        if await self.store.stat(ref.object_key) is None:
            raise InvalidTask(f"the model file {ref.object_key!r} does not exist")
        return ref.model_dump(mode="json")

    async def _code_archive_exists(self, location: str | None) -> None:
        if location and location.startswith(STORE_PREFIX) and \
                await self.store.stat(location[len(STORE_PREFIX):]) is None:
            raise InvalidTask(f"the code archive {location!r} does not exist")

    async def check_model(self, model: dict[str, Any], params: dict[str, Any]) -> None:
        """Fetch the model and inspect it (nothing in it runs): not ONNX, escaping external data or an input
        shape that the declared preprocessing cannot feed → 422 now rather than a failed run later."""
        evaluator = named_evaluator(params)
        formats = evaluator.model_formats if evaluator is not None else ("onnx",)
        if model.get("format", "onnx") not in formats:
            raise InvalidTask(f"the {evaluator.name if evaluator else 'built-in'} evaluator scores "
                              f"{', '.join(f.upper() for f in formats)} models; this one is {model.get('format')!r}")
        if model.get("format", "onnx") != "onnx":
            return  # nothing more MTT can look at before the run: the evaluator checks it then
        info = await self.store.stat(model["object_key"])
        if info is not None and info.size > self.settings.max_model_bytes:
            raise InvalidTask(f"the model is {info.size} bytes; the limit is {self.settings.max_model_bytes}")
        with tempfile.TemporaryDirectory(prefix="mtt-model-") as tmp:
            path = await download(self.store, model["object_key"], Path(tmp) / "model.onnx")
            onnx_info = await asyncio.to_thread(inspect_onnx, path)
            prep = params.get("preprocess")
            if prep is None:
                from mtt.evaluator.evaluate import declared_in_model

                declared = await asyncio.to_thread(declared_in_model, path)
            else:
                declared = parse_preprocess(prep, where="params.preprocess")
        if declared is not None and declared.kind != "tensor":
            main_input(declared, onnx_info.inputs)

    # ---- create ----------------------------------------------------------------------------------

    async def create(self, body: TaskCreate, owner: str | None, *, origin: str = "api", dedup_key: str | None = None,
                     inspect_model: bool = True, set_kind: SetKind | None = None) -> Task:
        """A task with a command but no code yet is a draft: it becomes ready when its code arrives."""
        code = await self._checked_code(body, origin)
        datasets = await self._datasets(body.datasets, body.kind)
        model = await self._model(body.model, body.model_name) if body.kind == "test" or body.model else None
        if model is not None and body.kind == "test" and not body.command and inspect_model:
            await self.check_model(model, body.params)
        version_id = _version_id(model)
        function = body.function or await self._function_of(body.kind, datasets, version_id)
        if body.kind == "test" and set_kind is None:
            set_kind = await self.set_kind_of(uuid.UUID(datasets[0]["dataset_id"]), version_id)
        task = Task(id=uuid.uuid4(), kind=body.kind, name=body.name or f"{body.kind} {datasets[0]['dataset_id'][:8]}",
                    status="draft", owner=owner, origin=origin, dedup_key=dedup_key, datasets=datasets, model=model,
                    function=function, set_kind=set_kind if body.kind == "test" else None,
                    model_version_id=version_id, code_location=code, command=body.command, params=dict(body.params),
                    queue=body.queue, timeout_seconds=body.timeout_seconds, attempt=0, cancel_requested=False,
                    metrics={}, artifacts=[], created_at=utcnow(), updated_at=utcnow())
        settle(task)
        if body.run and task.status != "ready":
            raise InvalidTask(f"the task cannot run: {runnable(task)}")
        await self.repo.add(task)
        await outbox.add(self.session, TaskCreated(task_id=task.id, kind=task.kind))
        if body.run:
            await self._enqueue(task)
        return task

    async def _checked_code(self, body: TaskCreate, origin: str) -> str | None:
        """The command, the code location and the declared preprocessing checked; → the code location."""
        if body.command is not None:
            check_command(body.command)
        # a user's location must lie under the code roots; an event's comes from the operator's settings
        # (default_train_code): the runner checks it against the roots before it runs, and says so in the task
        roots = self.settings.code_roots if origin == "api" else None
        code = check_code_location(body.code_location, roots) if body.code_location else None
        await self._code_archive_exists(code)
        if "preprocess" in body.params:
            parse_preprocess(body.params["preprocess"], where="params.preprocess")
        if origin == "api":  # a task made from an event says so when it runs (its event is not refused)
            named_evaluator(body.params)
            check_requested(body.params)  # params.runner names an active runner backend
        return code

    async def _function_of(self, kind: str, datasets: list[dict[str, Any]], version_id: uuid.UUID | None) -> str | None:
        """Training: the train dataset's function. Testing: the registered model's, else the test dataset's."""
        if kind == "test" and version_id is not None:
            registered = await self.repo.model(version_id)
            if registered is not None and registered.function:
                return registered.function
        for ds in sorted(datasets, key=lambda d: d["purpose"] != kind):  # a train dataset first for training
            known = await self.repo.dataset(uuid.UUID(ds["dataset_id"]))
            if known is not None and known.function:
                return known.function
        return None

    async def set_kind_of(self, dataset_id: uuid.UUID, version_id: uuid.UUID | None) -> SetKind:
        """Which set a dataset is for a version: a badcase test set, one of its test splits, or other."""
        known = await self.repo.dataset(dataset_id)
        if known is not None and known.is_badcase_test_set:
            return "badcase_test_set"
        registered = await self.repo.model(version_id) if version_id is not None else None
        if registered is not None and str(dataset_id) in (registered.test_dataset_ids or []):
            return "test_split"
        return "other"

    async def test_splits(self, task: Task) -> list[uuid.UUID]:
        """A training task's test split(s): its test-purpose datasets and the test sets grouped with its data,
        never a badcase test set."""
        out: list[uuid.UUID] = []

        def keep(dataset_id: uuid.UUID) -> None:
            if dataset_id not in out:
                out.append(dataset_id)

        for ds in task.datasets:
            known = await self.repo.dataset(uuid.UUID(ds["dataset_id"]))
            badcase = known.is_badcase_test_set if known is not None else bool(ds.get("is_badcase_test_set"))
            if ds.get("purpose") == "test" and not badcase:
                keep(uuid.UUID(ds["dataset_id"]))
            if known is not None and known.group_id is not None:
                for sibling in await self.repo.group_siblings(known.group_id, "test"):
                    if not sibling.is_badcase_test_set:
                        keep(sibling.dataset_id)
        return out

    # ---- change ----------------------------------------------------------------------------------

    async def update(self, task_id: uuid.UUID, body: TaskUpdate) -> Task:
        task = await self.get(task_id, for_update=True)
        _not_active(task, "changing it")
        fields = body.model_fields_set
        if "command" in fields and body.command is not None:
            check_command(body.command)
        if "code_location" in fields:
            task.code_location = (check_code_location(body.code_location, self.settings.code_roots)
                                  if body.code_location else None)
            await self._code_archive_exists(task.code_location)
        _apply_fields(task, body, fields)
        if "model" in fields:
            task.model = await self._model(body.model, None)
            task.model_version_id = _version_id(task.model)
        if task.model and task.kind == "test" and not task.command and ({"model", "params"} & fields):
            await self.check_model(task.model, task.params)
        settle(task)
        task.updated_at = utcnow()
        return task

    async def create_with_code(self, body: TaskCreate, owner: str | None, code: AsyncIterable[bytes]) -> Task:
        """One call: the task, its code archive (checked as by `store_code`), its command and params; queued at
        once with `run: true`."""
        with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
            archive = await self._spool_code(code, Path(tmp) / "code", "the `code` part is empty: send a .zip or "
                                                                        ".tar.gz")
            if body.code_location:
                raise InvalidTask("give the code as the `code` part or as code_location, not both")
            # the archive is checked by store_code; a refusal rolls the task back with the request
            task = await self.create(body.model_copy(update={"run": False}), owner)
            await self.store_code(task, archive)
        if body.run:
            why = runnable(task)
            if why is not None:
                raise InvalidTask(f"the task cannot run: {why}")
            await self._enqueue(task)
        return task

    async def upload_code(self, task_id: uuid.UUID, code: AsyncIterable[bytes]) -> Task:
        task = await self.get(task_id, for_update=True)
        _not_active(task, "changing its code")
        with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
            archive = await self._spool_code(code, Path(tmp) / "code", "the request body is empty: send the file "
                                                                        "as the raw body")
            return await self.store_code(task, archive)

    async def _spool_code(self, chunks: AsyncIterable[bytes], path: Path, empty: str) -> Path:
        if await spool(chunks, path, self.settings.max_upload_bytes) == 0:
            raise InvalidTask(empty)
        return path

    async def store_code(self, task: Task, archive: Path) -> Task:
        """Check a .zip / .tar.gz (no absolute or `..` paths, no links, bounded), store it, point the task at it."""
        _not_active(task, "changing its code")
        ext = await asyncio.to_thread(check_archive, archive)
        key = f"{self.prefix}/tasks/{task.id}/code/{utcnow().strftime('%Y%m%dT%H%M%S%f')}.{ext}"
        await self.store.put(key, file_chunks(archive), max_size=self.settings.max_upload_bytes)
        task.code_location = STORE_PREFIX + key
        settle(task)
        task.updated_at = utcnow()
        return task

    async def announce_testing_failed(self, task: Task, reason: str, *, incompatible: bool = False) -> None:
        """`testing.failed` for a testing task of a model that gave no result (the gate waits for one)."""
        if task.kind != "test" or not task.model or not task.datasets:
            return
        await outbox.add(self.session, TestingFailed(
            task_id=task.id, model_name=task.model["name"], model_version=task.model["version"],
            model_version_id=task.model_version_id, dataset_id=uuid.UUID(task.datasets[0]["dataset_id"]),
            function=task.function, set_kind=task.set_kind or "other", incompatible=incompatible,
            reason=reason[:2000]))

    # ---- queue and cancel ------------------------------------------------------------------------

    async def enqueue(self, task_id: uuid.UUID) -> Task:
        """Queue a run (a new attempt)."""
        return await self._enqueue(await self.get(task_id, for_update=True))

    async def _enqueue(self, task: Task) -> Task:
        if task.status in ACTIVE:
            raise TaskStateConflict(f"the task is already {task.status}")
        why = runnable(task)
        if why is not None:
            raise TaskStateConflict(f"the task cannot run: {why}")
        now = utcnow()
        task.attempt += 1
        task.status, task.queued_at, task.updated_at = "queued", now, now
        task.cancel_requested, task.error, task.exit_code, task.runner_id = False, None, None, None
        task.started_at = task.finished_at = None
        await self.repo.add(RunRequest(id=uuid.uuid4(), task_id=task.id, attempt=task.attempt, queue=task.queue,
                                       created_at=now))
        return task

    async def rerun(self, task: Task) -> Task:
        """A task an event asks for again: a new attempt unless one is queued or running."""
        if task.status in ("ready", "failed", "cancelled"):
            await self._enqueue(task)
        return task

    async def requeue_stale(self) -> int:
        """Runs whose runner went silent (no heartbeat for `stale_after_seconds`): a new attempt is queued."""
        now = utcnow()
        stale = await self.repo.stale_running(now - timedelta(seconds=self.settings.stale_after_seconds))
        for task in stale:
            old, runner = task.attempt, task.runner_id or "?"
            task.status = "ready"
            if task.cancel_requested:
                task.status, task.finished_at, task.error = "cancelled", now, "cancelled (its runner went silent)"
                await outbox.add(self.session, TaskFailed(task_id=task.id, kind=task.kind, reason="cancelled"))
                await self.announce_testing_failed(task, "cancelled")
                continue
            await self._enqueue(task)
            task.error = f"attempt {old} lost its runner {runner}"
        return len(stale)

    async def cancel(self, task_id: uuid.UUID, who: str) -> Task:
        task = await self.get(task_id, for_update=True)
        if task.status in TERMINAL:
            raise TaskStateConflict(f"the task already ended ({task.status})")
        now = utcnow()
        if task.status == "running":
            task.cancel_requested, task.updated_at = True, now  # the runner kills the process group
            return task
        task.status, task.finished_at, task.updated_at, task.error = "cancelled", now, now, f"cancelled by {who}"
        await outbox.add(self.session, TaskFailed(task_id=task.id, kind=task.kind, reason=f"cancelled by {who}"))
        await self.announce_testing_failed(task, f"cancelled by {who}")
        return task


def _apply_fields(task: Task, body: TaskUpdate, fields: set[str]) -> None:
    """The fields of an update that need no lookup."""
    if "command" in fields:
        task.command = body.command
    if "function" in fields:
        task.function = body.function
    if "params" in fields and body.params is not None:
        if "preprocess" in body.params:
            parse_preprocess(body.params["preprocess"], where="params.preprocess")
        check_requested(body.params)
        task.params = dict(body.params)
    if "name" in fields and body.name is not None:
        task.name = body.name
    if "timeout_seconds" in fields:
        task.timeout_seconds = body.timeout_seconds


class TaskUseCase:
    """Base of the services built on `TaskService` (automatic tasks, runs, artifacts, the report): one session,
    settings and store."""

    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore) -> None:
        self.session = session
        self.settings = settings
        self.tasks = TaskService(session, settings, store)
        self.repo = self.tasks.repo
