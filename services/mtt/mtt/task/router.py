from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from mlife_shared.auth import Engineer, Viewer
from mlife_shared.bounds import INT32_MAX
from mtt.task.dependencies import ArtifactServiceDep, TaskServiceDep
from mtt.task.exceptions import InvalidTask
from mtt.task.schemas import LogChunk, StoredFile, TaskCreate, TaskRead, TaskUpdate

router = APIRouter(prefix="/tasks", tags=["tasks"])


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

    inlined = walk(schema)
    assert isinstance(inlined, dict)
    return inlined


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
async def create_task(request: Request, svc: TaskServiceDep, user: Engineer) -> TaskRead:
    """Create a training or testing task (and queue it with `run: true`): a TaskCreate as JSON, or
    multipart/form-data with a `task` part (TaskCreate JSON) and a `code` part (.zip/.tar.gz) — code, command and
    params in one call. A task with a command whose code is not there yet is a draft."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return svc.read(await svc.create(_task_body(await request.body(), ("body",)), user.username))
    async with request.form(max_files=1, max_fields=1, max_part_size=TASK_PART_LIMIT) as form:
        task_part, code_part = form.get("task"), form.get("code")
        if task_part is None:
            raise InvalidTask("multipart: send the task (TaskCreate JSON) as the `task` part")
        body = _task_body(await _task_part(task_part), ("body", "task"))
        if code_part is None:
            return svc.read(await svc.create(body, user.username))
        if not isinstance(code_part, UploadFile):
            raise InvalidTask("multipart: send the code archive as a file in the `code` part")
        return svc.read(await svc.create_with_code(body, user.username, _chunks(code_part)))


async def _task_part(part: UploadFile | str) -> bytes | str:
    if isinstance(part, UploadFile):  # sent as a file: bounded as a field is (max_part_size)
        if (part.size or 0) > TASK_PART_LIMIT:
            raise InvalidTask(f"multipart: the `task` part is over {TASK_PART_LIMIT} bytes")
        return await part.read()
    return part


async def _chunks(part: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await part.read(1 << 20):
        yield chunk


@router.get("")
async def list_tasks(svc: TaskServiceDep, _: Viewer,
                     kind: Literal["train", "test"] | None = None,
                     status: Literal["draft", "ready", "queued", "running", "succeeded", "failed", "cancelled"]
                     | None = None,
                     function: Annotated[str | None, Query(max_length=200)] = None,
                     model_version_id: uuid.UUID | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[TaskRead]:
    """Tasks, newest first; filter by kind, status, function or the tested model version."""
    return [svc.read(t) for t in await svc.search(kind=kind, status=status, function=function,
                                                  model_version_id=model_version_id, limit=limit)]


@router.get("/{task_id}")
async def get_task(task_id: uuid.UUID, svc: TaskServiceDep, _: Viewer) -> TaskRead:
    return svc.read(await svc.get(task_id))


@router.patch("/{task_id}")
async def update_task(task_id: uuid.UUID, body: TaskUpdate, svc: TaskServiceDep, _: Engineer) -> TaskRead:
    """Set the code, command, parameters, model or function; a draft whose code is set becomes ready."""
    return svc.read(await svc.update(task_id, body))


@router.post("/{task_id}/run", status_code=202)
async def run_task(task_id: uuid.UUID, svc: TaskServiceDep, _: Engineer) -> TaskRead:
    """Queue a run (a new attempt): a runner picks it from the work queue."""
    return svc.read(await svc.enqueue(task_id))


@router.post("/{task_id}/cancel", status_code=202)
async def cancel_task(task_id: uuid.UUID, svc: TaskServiceDep, user: Engineer) -> TaskRead:
    """Cancel: a queued task ends at once; a running one is killed (its whole process group) by its runner."""
    return svc.read(await svc.cancel(task_id, user.username))


@router.get("/{task_id}/logs")
async def task_logs(task_id: uuid.UUID, svc: ArtifactServiceDep, _: Viewer,
                    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
                    limit: Annotated[int, Query(ge=1, le=4 * 1024 * 1024)] = 1024 * 1024,
                    attempt: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None) -> LogChunk:
    """The log from `offset`: call again with `next_offset` for a live tail until `complete`."""
    return await svc.log(task_id, offset, limit, attempt)


@router.post("/{task_id}/model", status_code=201)
async def upload_model(task_id: uuid.UUID, request: Request, svc: ArtifactServiceDep, _: Engineer,
                       name: Annotated[str, Query(min_length=1, max_length=200)],
                       format: Annotated[str, Query(pattern=r"^[a-z0-9_.-]{1,20}$")] = "onnx") -> StoredFile:
    """Upload a model file for a training task (raw body). ONNX is inspected without running anything
    (a pickle named .onnx → 422) and announced as `model.uploaded`; other formats are stored and tracked."""
    return await svc.upload_model(task_id, name, format, request.stream())


@router.post("/{task_id}/code", status_code=201)
async def upload_code(task_id: uuid.UUID, request: Request, svc: TaskServiceDep, _: Engineer) -> TaskRead:
    """Upload the task's code as a .zip or .tar.gz (raw body): checked (no absolute or `..` paths, no links,
    bounded size), stored, and extracted by whichever runner takes the task (`code_location = store:<key>`)."""
    return svc.read(await svc.upload_code(task_id, request.stream()))


@router.post("/{task_id}/results", status_code=201)
async def upload_result(task_id: uuid.UUID, request: Request, svc: ArtifactServiceDep, _: Engineer,
                        name: Annotated[str, Query(min_length=1, max_length=200)]) -> StoredFile:
    """Attach a result file (raw body) to the task."""
    return await svc.upload_result(task_id, name, request.stream())


@router.post("/{task_id}/logs", status_code=201)
async def upload_log(task_id: uuid.UUID, request: Request, svc: ArtifactServiceDep, _: Engineer) -> StoredFile:
    """Append text (raw body) to the current attempt's log, e.g. from code run outside a runner."""
    return await svc.append_log(task_id, request.stream())
