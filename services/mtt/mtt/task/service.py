"""Tasks: create (by users and from events), change, queue, cancel. Never commits: the caller's unit of work does."""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.events.contracts import SetKind, TaskCreated, TaskFailed, TestingFailed
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ObjectStore
from mlife_shared.objectstore.base import InvalidKey, validate_key
from mlife_shared.onnx_safety import inspect_onnx
from mtt.config import Settings
from mtt.evaluator.preprocess import main_input, parse_preprocess
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


CODE_ARCHIVES = "mtt/tasks/"  # where MTT stores uploaded code (store_code); no other object is code


def check_code_location(location: str, roots: Sequence[Path] | None = None) -> str:
    """`store:<key>` of an archive uploaded to MTT, or an absolute folder under one of the `code_roots` (on the
    runners' machines too). `roots=None` only for a location the operator configured (re-checked by the runner)."""
    if location.startswith(STORE_PREFIX):
        key = _key(location[len(STORE_PREFIX):], "code_location")
        if not key.startswith(CODE_ARCHIVES):
            raise InvalidTask(f"code_location {location[:200]!r} is not a code archive uploaded to MTT "
                              f"(store:{CODE_ARCHIVES}…): upload the code with POST /tasks/{{id}}/code")
        return location
    if "\x00" in location:
        raise InvalidTask("code_location contains a NUL byte")
    path = Path(location)
    if not path.is_absolute():
        raise InvalidTask(f"code_location {location!r} must be an absolute folder path")
    if roots is not None:
        _under_roots(location, roots)
    if not path.is_dir():
        raise InvalidTask(f"code_location {location!r} is not an existing folder")
    return str(path)


def _under_roots(location: str, roots: Sequence[Path]) -> Path:
    """The folder's real path (links followed) inside a real code root, or a 422 naming the setting."""
    if not roots:
        raise InvalidTask(f"code_location {location[:200]!r}: this server takes code only as an uploaded archive "
                          "(POST /tasks/{id}/code, or the `code` part); folders need MLIFE_MTT_CODE_ROOTS, which is "
                          "empty")
    real = Path(os.path.realpath(location))
    for root in roots:
        root_real = Path(os.path.realpath(root))
        if real == root_real or root_real in real.parents:
            return real
    raise InvalidTask(f"code_location {location[:200]!r} is outside the folders MLIFE_MTT_CODE_ROOTS allows "
                      f"({', '.join(str(r) for r in roots)}); its real path is {str(real)[:200]!r}")


def code_root_of(location: str, roots: Sequence[Path], *, runner: str) -> Path:
    """The runner's check before it copies a code folder: its real path, now, inside a code root."""
    from mtt.runner.result import RunFailed

    try:
        real = _under_roots(location, roots)
    except InvalidTask as exc:
        raise RunFailed(f"refused on runner {runner}: {exc.message}") from exc
    if not real.is_dir():
        raise RunFailed(f"the code location {location!r} is not a folder on runner {runner}")
    return real


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
        return "the command has no code yet: upload it (POST /tasks/{id}/code) or set code_location"
    if task.kind == "train" and not task.command:
        return "set code_location and command (the training code to run)"
    if task.kind == "test" and not task.command and not task.model:
        return "set the model to test (or a command for your own testing code)"
    return None


async def announce_testing_failed(session: AsyncSession, task: Task, reason: str, *,
                                  incompatible: bool = False) -> None:
    """`testing.failed` for a testing task of a model that gave no result (the gate waits for one)."""
    if task.kind != "test" or not task.model or not task.datasets:
        return
    await outbox.add(session, TestingFailed(
        task_id=task.id, model_name=task.model["name"], model_version=task.model["version"],
        model_version_id=task.model_version_id, dataset_id=uuid.UUID(task.datasets[0]["dataset_id"]),
        function=task.function, set_kind=task.set_kind or "other",  # type: ignore[arg-type]
        incompatible=incompatible, reason=reason[:2000]))


def _check_archive(path: Path) -> str:
    """The archive's extension (zip / tar.gz) once its members are known to be safe."""
    from mtt.runner.code import kind_of, members

    with path.open("rb") as fh:
        ext = kind_of(fh.read(4))
    members(path)
    return ext


async def file_chunks(path: Path, size: int = 1 << 20):  # type: ignore[no-untyped-def]
    """A local file as the chunk stream `ObjectStore.put` takes."""
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


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

    async def list(self, **filters: Any) -> list[Task]:
        return list(await self.repo.list(**filters))

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
        if declared is not None and declared.kind != "tensor":
            main_input(declared, onnx_info.inputs)

    async def create(self, body: TaskCreate, owner: str | None, *, origin: str = "api", dedup_key: str | None = None,
                     inspect_model: bool = True, set_kind: SetKind | None = None) -> Task:
        """A task with a command but no code yet is a draft: it becomes ready when its code arrives."""
        if body.command is not None:
            check_command(body.command)
        # a user's location must lie under the code roots; an event's comes from the operator's settings
        # (default_train_code): the runner checks it against the roots before it runs, and says so in the task
        roots = self.settings.code_roots if origin == "api" else None
        code = check_code_location(body.code_location, roots) if body.code_location else None
        if code and code.startswith(STORE_PREFIX) and await self.store.stat(code[len(STORE_PREFIX):]) is None:
            raise InvalidTask(f"the code archive {code!r} does not exist")
        if "preprocess" in body.params:
            parse_preprocess(body.params["preprocess"], where="params.preprocess")
        datasets = await self._datasets(body.datasets, body.kind)
        model = await self._model(body.model, body.model_name) if body.kind == "test" or body.model else None
        if model is not None and body.kind == "test" and not body.command and inspect_model:
            await self.check_model(model, body.params)
        version_id = uuid.UUID(model["model_version_id"]) if model and model.get("model_version_id") else None
        function = body.function or await self._function_of(body.kind, datasets, version_id)
        if body.kind == "test" and set_kind is None:
            set_kind = await self.set_kind_of(uuid.UUID(datasets[0]["dataset_id"]), version_id)
        task = Task(id=uuid.uuid4(), kind=body.kind, name=body.name or f"{body.kind} {datasets[0]['dataset_id'][:8]}",
                    status="draft", owner=owner, origin=origin, dedup_key=dedup_key, datasets=datasets, model=model,
                    function=function, set_kind=set_kind if body.kind == "test" else None,
                    model_version_id=version_id, code_location=code, command=body.command, params=dict(body.params),
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

    async def update(self, task: Task, body: TaskUpdate) -> Task:
        if task.status in ("queued", "running"):
            raise TaskStateConflict(f"the task is {task.status}; cancel it before changing it")
        fields = body.model_fields_set
        if "command" in fields and body.command is not None:
            check_command(body.command)
        if "code_location" in fields:
            task.code_location = (check_code_location(body.code_location, self.settings.code_roots)
                                  if body.code_location else None)
            if task.code_location and task.code_location.startswith(STORE_PREFIX) and \
                    await self.store.stat(task.code_location[len(STORE_PREFIX):]) is None:
                raise InvalidTask(f"the code archive {task.code_location!r} does not exist")
        if "command" in fields:
            task.command = body.command
        if "function" in fields:
            task.function = body.function
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
            version = task.model.get("model_version_id") if task.model else None
            task.model_version_id = uuid.UUID(version) if version else None
        if task.model and task.kind == "test" and not task.command and ({"model", "params"} & fields):
            await self.check_model(task.model, task.params)
        if task.status in ("draft", "ready"):
            task.status = "ready" if runnable(task) is None else "draft"
        task.updated_at = utcnow()
        return task

    async def create_with_code(self, body: TaskCreate, owner: str | None, archive: Path) -> Task:
        """One call: the task, its code archive (checked as by `store_code`), its command and params; queued at
        once with `run: true`."""
        if body.code_location:
            raise InvalidTask("give the code as the `code` part or as code_location, not both")
        # the archive is checked by store_code; a refusal rolls the task back with the request
        task = await self.create(body.model_copy(update={"run": False}), owner)
        await self.store_code(task, archive)
        if body.run:
            why = runnable(task)
            if why is not None:
                raise InvalidTask(f"the task cannot run: {why}")
            await self.enqueue(task)
        return task

    async def store_code(self, task: Task, archive: Path) -> Task:
        """Check a .zip / .tar.gz (no absolute or `..` paths, no links, bounded), store it, point the task at it."""
        if task.status in ("queued", "running"):
            raise TaskStateConflict(f"the task is {task.status}; cancel it before changing its code")
        ext = await asyncio.to_thread(_check_archive, archive)
        key = f"{self.prefix}/tasks/{task.id}/code/{utcnow().strftime('%Y%m%dT%H%M%S%f')}.{ext}"
        await self.store.put(key, file_chunks(archive), max_size=self.settings.max_upload_bytes)
        return self.set_code_archive(task, key)

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
                await announce_testing_failed(self.session, task, "cancelled")
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
        await announce_testing_failed(self.session, task, f"cancelled by {who}")
        return task
