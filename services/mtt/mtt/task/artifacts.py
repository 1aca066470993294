"""What is attached to a task besides its runs: models and results uploaded by code run outside a runner, and
the log of each attempt. Never commits: the request's unit of work does."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterable
from pathlib import Path

from mlife_shared.db import utcnow
from mlife_shared.errors import PayloadTooLarge
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.messaging import outbox
from mlife_shared.objectstore.base import iterate
from mlife_shared.onnx_safety import inspect_onnx
from mtt.files import file_chunks, spool
from mtt.runner.logs import read_log
from mtt.task.exceptions import InvalidTask, TaskStateConflict
from mtt.task.models import TERMINAL
from mtt.task.schemas import LogChunk, StoredFile
from mtt.task.service import TaskUseCase
from mtt.task.validation import check_name

EMPTY_BODY = "the request body is empty: send the file as the raw body"


class ArtifactService(TaskUseCase):
    async def _stored(self, chunks: AsyncIterable[bytes], key: str, path: Path, limit: int) -> StoredFile:
        if await spool(chunks, path, limit) == 0:
            raise InvalidTask(EMPTY_BODY)
        stored = await self.tasks.own.put(key, file_chunks(path), max_size=limit)
        return StoredFile(key=self.tasks.own.full_key(key), size=stored.size, md5=stored.md5)

    async def upload_model(self, task_id: uuid.UUID, name: str, format: str,
                           body: AsyncIterable[bytes]) -> StoredFile:
        """A training task's model file: ONNX is inspected (nothing in it runs) and announced as `model.uploaded`;
        other formats are stored and tracked."""
        task = await self.tasks.get(task_id, for_update=True)
        if task.kind != "train":
            raise TaskStateConflict("models are uploaded by training tasks")
        check_name(name)
        limit = self.settings.max_model_bytes
        with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
            path = Path(tmp) / f"model.{format}"
            if await spool(body, path, limit) == 0:
                raise InvalidTask(EMPTY_BODY)
            if format == "onnx":
                await asyncio.to_thread(inspect_onnx, path)
            key = f"tasks/{task.id}/models/upload/{name}/model.{format}"
            stored = await self.tasks.own.put(key, file_chunks(path), max_size=limit)
        out = StoredFile(key=self.tasks.own.full_key(key), size=stored.size, md5=stored.md5)
        task.artifacts = [*task.artifacts, {"kind": "model", "name": name, "format": format, "key": out.key,
                                            "size": out.size, "md5": out.md5}]
        task.updated_at = utcnow()
        await outbox.add(self.session, ModelUploaded(
            task_id=task.id, model_name=name, object_key=out.key, format=format, md5=out.md5, size=out.size,
            metrics=dict(task.metrics), function=task.function, test_dataset_ids=await self.tasks.test_splits(task)))
        return out

    async def upload_result(self, task_id: uuid.UUID, name: str, body: AsyncIterable[bytes]) -> StoredFile:
        task = await self.tasks.get(task_id, for_update=True)
        check_name(name)
        with tempfile.TemporaryDirectory(prefix="mtt-upload-") as tmp:
            out = await self._stored(body, f"tasks/{task.id}/results/upload/{name}", Path(tmp) / "result",
                                     self.settings.max_upload_bytes)
        task.artifacts = [*task.artifacts, {"kind": "result", "name": name, "key": out.key, "size": out.size}]
        task.updated_at = utcnow()
        return out

    async def append_log(self, task_id: uuid.UUID, body: AsyncIterable[bytes]) -> StoredFile:
        """Text appended to the current attempt's log."""
        task = await self.tasks.get(task_id)
        data = bytearray()
        async for chunk in body:
            data += chunk
            if len(data) > self.settings.max_upload_bytes:
                raise PayloadTooLarge(f"the upload exceeds {self.settings.max_upload_bytes} bytes")
        if not data:
            raise InvalidTask("the request body is empty")
        key = f"tasks/{task.id}/logs/{max(task.attempt, 1)}/upload-{utcnow().strftime('%Y%m%dT%H%M%S%f')}.log"
        stored = await self.tasks.own.put(key, iterate(bytes(data)), content_type="text/plain")
        return StoredFile(key=self.tasks.own.full_key(key), size=stored.size, md5=stored.md5)

    async def log(self, task_id: uuid.UUID, offset: int, limit: int, attempt: int | None) -> LogChunk:
        """The log of an attempt (the current one by default: a task that never ran keeps what was uploaded
        to it under attempt 1, where `append_log` puts it) from `offset`."""
        task = await self.tasks.get(task_id)
        att = attempt or max(task.attempt, 1)
        data, nxt = await read_log(self.tasks.own, task.id, att, offset, limit)
        complete = att < task.attempt or task.status in TERMINAL
        return LogChunk(task_id=task.id, attempt=att, offset=offset, next_offset=nxt,
                        text=data.decode("utf-8", errors="replace"), complete=complete and nxt == offset + len(data))
