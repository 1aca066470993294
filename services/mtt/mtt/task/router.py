from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer
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
from mtt.task.repository import TaskRepository
from mtt.task.schemas import LogChunk, StoredFile, TaskCreate, TaskRead, TaskUpdate
from mtt.task.service import TaskService

router = APIRouter(prefix="/tasks", tags=["tasks"])


def _service(request: Request, session: SessionDep) -> TaskService:
    return TaskService(session, request.app.state.settings, request.app.state.raw_store)


@router.post("", status_code=201)
async def create_task(body: TaskCreate, request: Request, session: SessionDep, user: Engineer) -> TaskRead:
    """Create a training or testing task (and queue it with `run: true`)."""
    svc = _service(request, session)
    return svc.read(await svc.create(body, user.username))


@router.get("")
async def list_tasks(request: Request, session: SessionDep, _: Viewer,
                     kind: Literal["train", "test"] | None = None,
                     status: Literal["draft", "ready", "queued", "running", "succeeded", "failed", "cancelled"]
                     | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[TaskRead]:
    svc = _service(request, session)
    return [svc.read(t) for t in await TaskRepository(session).list(kind=kind, status=status, limit=limit)]


@router.get("/{task_id}")
async def get_task(task_id: uuid.UUID, request: Request, session: SessionDep, _: Viewer) -> TaskRead:
    svc = _service(request, session)
    return svc.read(await svc.get(task_id))


@router.patch("/{task_id}")
async def update_task(task_id: uuid.UUID, body: TaskUpdate, request: Request, session: SessionDep,
                      _: Engineer) -> TaskRead:
    """Set the code, command, parameters or model; a draft whose code is set becomes ready."""
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
                    attempt: Annotated[int | None, Query(ge=1)] = None) -> LogChunk:
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


async def _file_stream(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


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
        stored = await store.put(key, _file_stream(path), max_size=settings.max_model_bytes)
    full = store.full_key(key)
    task.artifacts = [*task.artifacts, {"kind": "model", "name": name, "format": format, "key": full,
                                        "size": stored.size, "md5": stored.md5}]
    task.updated_at = utcnow()
    await outbox.add(session, ModelUploaded(task_id=task.id, model_name=name, object_key=full, format=format,
                                            md5=stored.md5, size=stored.size, metrics=dict(task.metrics)))
    return StoredFile(key=full, size=stored.size, md5=stored.md5)


@router.post("/{task_id}/code", status_code=201)
async def upload_code(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                      _: Engineer) -> TaskRead:
    """Upload the task's code as a .zip or .tar.gz (raw body): checked (no absolute or `..` paths, no links,
    bounded size), stored, and extracted by whichever runner takes the task (`code_location = store:<key>`)."""
    from mtt.runner.code import kind_of, members

    settings: Settings = request.app.state.settings
    svc = _service(request, session)
    task = await svc.get(task_id, for_update=True)
    if task.status in ("queued", "running"):
        raise TaskStateConflict(f"the task is {task.status}; cancel it before changing its code")
    with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
        path = Path(tmp) / "code"
        await _body_to_file(request, path, settings.max_upload_bytes)
        with path.open("rb") as fh:
            ext = kind_of(fh.read(4))
        await asyncio.to_thread(members, path)
        key = f"tasks/{task.id}/code/{utcnow().strftime('%Y%m%dT%H%M%S%f')}.{ext}"
        await store.put(key, _file_stream(path), max_size=settings.max_upload_bytes)
    return svc.read(svc.set_code_archive(task, store.full_key(key)))


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
        stored = await store.put(key, _file_stream(path), max_size=settings.max_upload_bytes)
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
