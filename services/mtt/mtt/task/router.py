from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer
from mlife_shared.bounds import INT32_MAX
from mlife_shared.db import utcnow
from mlife_shared.errors import PayloadTooLarge
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.messaging import outbox
from mlife_shared.objectstore.base import iterate
from mlife_shared.onnx_safety import inspect_onnx
from mtt.config import Settings
from mtt.runner.logs import read_log
from mtt.task.exceptions import InvalidTask, TaskStateConflict
from mtt.task.models import TERMINAL
from mtt.task.schemas import LogChunk, StoredFile, TaskCreate, TaskRead, TaskUpdate
from mtt.task.service import TaskService, file_chunks

router = APIRouter(prefix="/tasks", tags=["tasks"])


def _service(request: Request, session: SessionDep) -> TaskService:
    return TaskService(session, request.app.state.settings, request.app.state.raw_store)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` put in place (for a request body declared by hand)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)  # type: ignore[no-any-return]


TASK_PART_LIMIT = 1024 * 1024
_TASK_SCHEMA = _inline(TaskCreate.model_json_schema())
CREATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _TASK_SCHEMA},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["task"],
        "properties": {"task": {"type": "string", "description": "The TaskCreate, as JSON"},
                       "code": {"type": "string", "format": "binary",
                                "description": "The code as a .zip or .tar.gz (checked as by POST /tasks/{id}/code)"}}}},
}}}


def _task_body(raw: bytes | str, where: tuple[str, ...]) -> TaskCreate:
    try:
        return TaskCreate.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": (*where, *e["loc"])} for e in exc.errors()]) from exc


@router.post("", status_code=201, openapi_extra=CREATE_BODY)
async def create_task(request: Request, session: SessionDep, user: Engineer) -> TaskRead:
    """Create a training or testing task (and queue it with `run: true`): a TaskCreate as JSON, or
    multipart/form-data with a `task` part (TaskCreate JSON) and a `code` part (.zip/.tar.gz) — code, command and
    params in one call. A task with a command whose code is not there yet is a draft."""
    svc = _service(request, session)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return svc.read(await svc.create(_task_body(await request.body(), ("body",)), user.username))
    settings: Settings = request.app.state.settings
    async with request.form(max_files=1, max_fields=1, max_part_size=TASK_PART_LIMIT) as form:
        task_part, code_part = form.get("task"), form.get("code")
        if task_part is None:
            raise InvalidTask("multipart: send the task (TaskCreate JSON) as the `task` part")
        if isinstance(task_part, UploadFile):  # sent as a file: bounded as a field is (max_part_size)
            if (task_part.size or 0) > TASK_PART_LIMIT:
                raise InvalidTask(f"multipart: the `task` part is over {TASK_PART_LIMIT} bytes")
            raw: bytes | str = await task_part.read()
        else:
            raw = task_part
        body = _task_body(raw, ("body", "task"))
        if code_part is None:
            return svc.read(await svc.create(body, user.username))
        if not isinstance(code_part, UploadFile):
            raise InvalidTask("multipart: send the code archive as a file in the `code` part")
        with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
            path = Path(tmp) / "code"
            await _part_to_file(code_part, path, settings.max_upload_bytes)
            return svc.read(await svc.create_with_code(body, user.username, path))


@router.get("")
async def list_tasks(request: Request, session: SessionDep, _: Viewer,
                     kind: Literal["train", "test"] | None = None,
                     status: Literal["draft", "ready", "queued", "running", "succeeded", "failed", "cancelled"]
                     | None = None,
                     function: Annotated[str | None, Query(max_length=200)] = None,
                     model_version_id: uuid.UUID | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[TaskRead]:
    """Tasks, newest first; filter by kind, status, function or the tested model version."""
    svc = _service(request, session)
    return [svc.read(t) for t in await svc.list(kind=kind, status=status, function=function,
                                                model_version_id=model_version_id, limit=limit)]


@router.get("/{task_id}")
async def get_task(task_id: uuid.UUID, request: Request, session: SessionDep, _: Viewer) -> TaskRead:
    svc = _service(request, session)
    return svc.read(await svc.get(task_id))


@router.patch("/{task_id}")
async def update_task(task_id: uuid.UUID, body: TaskUpdate, request: Request, session: SessionDep,
                      _: Engineer) -> TaskRead:
    """Set the code, command, parameters, model or function; a draft whose code is set becomes ready."""
    svc = _service(request, session)
    return svc.read(await svc.update(await svc.get(task_id, for_update=True), body))


@router.post("/{task_id}/run", status_code=202)
async def run_task(task_id: uuid.UUID, request: Request, session: SessionDep, _: Engineer) -> TaskRead:
    """Queue a run (a new attempt): a runner picks it from the work queue."""
    svc = _service(request, session)
    return svc.read(await svc.enqueue(await svc.get(task_id, for_update=True)))


@router.post("/{task_id}/cancel", status_code=202)
async def cancel_task(task_id: uuid.UUID, request: Request, session: SessionDep, user: Engineer) -> TaskRead:
    """Cancel: a queued task ends at once; a running one is killed (its whole process group) by its runner."""
    svc = _service(request, session)
    return svc.read(await svc.cancel(await svc.get(task_id, for_update=True), user.username))


@router.get("/{task_id}/logs")
async def task_logs(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep, _: Viewer,
                    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
                    limit: Annotated[int, Query(ge=1, le=4 * 1024 * 1024)] = 1024 * 1024,
                    attempt: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None) -> LogChunk:
    """The log from `offset`: call again with `next_offset` for a live tail until `complete`."""
    task = await _service(request, session).get(task_id)
    att = attempt or task.attempt
    data, nxt = await read_log(store, task.id, att, offset, limit)
    complete = att < task.attempt or task.status in TERMINAL
    return LogChunk(task_id=task.id, attempt=att, offset=offset, next_offset=nxt,
                    text=data.decode("utf-8", errors="replace"), complete=complete and nxt == offset + len(data))


async def _body_to_file(request: Request, path: Path, limit: int) -> None:
    size = 0
    with path.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
            fh.write(chunk)
    if size == 0:
        raise InvalidTask("the request body is empty: send the file as the raw body")


async def _part_to_file(part: UploadFile, path: Path, limit: int) -> None:
    size = 0
    with path.open("wb") as fh:
        while chunk := await part.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
            fh.write(chunk)
    if size == 0:
        raise InvalidTask("the `code` part is empty: send a .zip or .tar.gz")


def _safe_name(name: str) -> str:
    if not name or len(name) > 200 or any(not (c.isalnum() or c in "-_.") for c in name) or name.strip(".") == "":
        raise InvalidTask("name: use 1-200 letters, digits, '-', '_' or '.'")
    return name


@router.post("/{task_id}/model", status_code=201)
async def upload_model(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep, _: Engineer,
                       name: Annotated[str, Query(min_length=1, max_length=200)],
                       format: Annotated[str, Query(pattern=r"^[a-z0-9_.-]{1,20}$")] = "onnx") -> StoredFile:
    """Upload a model file for a training task (raw body). ONNX is inspected without running anything
    (a pickle named .onnx → 422) and announced as `model.uploaded`; other formats are stored and tracked."""
    settings: Settings = request.app.state.settings
    svc = _service(request, session)
    task = await svc.get(task_id, for_update=True)
    if task.kind != "train":
        raise TaskStateConflict("models are uploaded by training tasks")
    _safe_name(name)
    with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
        path = Path(tmp) / f"model.{format}"
        await _body_to_file(request, path, settings.max_model_bytes)
        if format == "onnx":
            await asyncio.to_thread(inspect_onnx, path)
        key = f"tasks/{task.id}/models/upload/{name}/model.{format}"
        stored = await store.put(key, file_chunks(path), max_size=settings.max_model_bytes)
    full = store.full_key(key)
    task.artifacts = [*task.artifacts, {"kind": "model", "name": name, "format": format, "key": full,
                                        "size": stored.size, "md5": stored.md5}]
    task.updated_at = utcnow()
    await outbox.add(session, ModelUploaded(task_id=task.id, model_name=name, object_key=full, format=format,
                                            md5=stored.md5, size=stored.size, metrics=dict(task.metrics),
                                            function=task.function, test_dataset_ids=await svc.test_splits(task)))
    return StoredFile(key=full, size=stored.size, md5=stored.md5)


@router.post("/{task_id}/code", status_code=201)
async def upload_code(task_id: uuid.UUID, request: Request, session: SessionDep, _: Engineer) -> TaskRead:
    """Upload the task's code as a .zip or .tar.gz (raw body): checked (no absolute or `..` paths, no links,
    bounded size), stored, and extracted by whichever runner takes the task (`code_location = store:<key>`)."""
    settings: Settings = request.app.state.settings
    svc = _service(request, session)
    task = await svc.get(task_id, for_update=True)
    if task.status in ("queued", "running"):
        raise TaskStateConflict(f"the task is {task.status}; cancel it before changing its code")
    with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
        path = Path(tmp) / "code"
        await _body_to_file(request, path, settings.max_upload_bytes)
        return svc.read(await svc.store_code(task, path))


@router.post("/{task_id}/results", status_code=201)
async def upload_result(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep, _: Engineer,
                        name: Annotated[str, Query(min_length=1, max_length=200)]) -> StoredFile:
    """Attach a result file (raw body) to the task."""
    settings: Settings = request.app.state.settings
    task = await _service(request, session).get(task_id, for_update=True)
    _safe_name(name)
    with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
        path = Path(tmp) / "result"
        await _body_to_file(request, path, settings.max_upload_bytes)
        key = f"tasks/{task.id}/results/upload/{name}"
        stored = await store.put(key, file_chunks(path), max_size=settings.max_upload_bytes)
    full = store.full_key(key)
    task.artifacts = [*task.artifacts, {"kind": "result", "name": name, "key": full, "size": stored.size}]
    task.updated_at = utcnow()
    return StoredFile(key=full, size=stored.size, md5=stored.md5)


@router.post("/{task_id}/logs", status_code=201)
async def upload_log(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                     _: Engineer) -> StoredFile:
    """Append text (raw body) to the current attempt's log, e.g. from code run outside a runner."""
    settings: Settings = request.app.state.settings
    task = await _service(request, session).get(task_id)
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge(f"the upload exceeds {settings.max_upload_bytes} bytes")
    if not data:
        raise InvalidTask("the request body is empty")
    key = f"tasks/{task.id}/logs/{max(task.attempt, 1)}/upload-{utcnow().strftime('%Y%m%dT%H%M%S%f')}.log"
    stored = await store.put(key, iterate(data), content_type="text/plain")
    return StoredFile(key=store.full_key(key), size=stored.size, md5=stored.md5)
