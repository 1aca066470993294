"""The model registry: versions from MTT uploads, direct uploads and compression; aliases with their
history; search. Every model file is inspected as ONNX (never unpickled) before it is stored."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import new_id, utcnow
from mlife_shared.errors import MLifeError, PayloadTooLarge, Unprocessable
from mlife_shared.events.contracts import ModelRegistered, ModelUploaded
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ObjectStore, ScopedStore, validate_key
from mlife_shared.onnx_safety import OnnxInfo, inspect_onnx
from msm.config import Settings
from msm.registry import schemas as s
from msm.registry.docker import build_context
from msm.registry.exceptions import ModelNotFound, SourceNotAllowed
from msm.registry.models import AliasChange, ModelVersion, RegisteredModel
from msm.registry.repository import RegistryRepository
from msm.testing.repository import TestingRepository

log = structlog.get_logger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
CHUNK = 1 << 20


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise Unprocessable("a model name is 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


@contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="msm-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, CHUNK):
            yield chunk


async def download(store: ObjectStore | ScopedStore, key: str, target: Path) -> Path:
    with target.open("wb") as fh:
        async for chunk in await store.get(key):
            fh.write(chunk)
    return target


class RegistryService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ScopedStore) -> None:
        self.session = session
        self.repo = RegistryRepository(session)
        self.settings = settings
        self.store = store

    # ---- versions ------------------------------------------------------------------------------

    async def register(self, name: str, path: Path, *, source: str, actor: str, fmt: str = "onnx",
                       task_id: uuid.UUID | None = None, metrics: dict[str, float] | None = None,
                       tags: list[str] | None = None, description: str = "", lineage: dict[str, Any] | None = None,
                       parent: ModelVersion | None = None, function: str | None = None,
                       test_dataset_ids: list[uuid.UUID] | None = None, evaluate_on: uuid.UUID | None = None,
                       correlation: dict[str, Any] | None = None) -> ModelVersion:
        check_name(name)
        info: OnnxInfo | None = None
        if fmt == "onnx":
            info = await asyncio.to_thread(inspect_onnx, path, max_bytes=self.settings.model_max_bytes)
            if info.external_data:
                raise Unprocessable("models with external data cannot be registered yet; embed the weights")
        model = await self._model_for_update(name, function)
        if function and not model.function:
            model.function = function  # the first time it is known (e.g. the model was uploaded by hand before)
        splits = [str(d) for d in test_dataset_ids] if test_dataset_ids is not None else (
            list(parent.test_dataset_ids) if parent else [])
        version_id = new_id()
        key = f"models/{version_id}/model.{'onnx' if fmt == 'onnx' else 'bin'}"
        stored = await self.store.put(key, file_chunks(path), max_size=self.settings.model_max_bytes)
        version = ModelVersion(
            id=version_id, model_id=model.id, name=name, version=str(model.next_version), format=fmt,
            object_key=self.store.full_key(key), size=stored.size, md5=stored.md5, servable=info is not None,
            source=source, task_id=task_id, parent_version_id=parent.id if parent else None,
            metrics=dict(metrics or {}), tags=sorted(set(tags or [])), description=description,
            lineage=dict(lineage or {}), signature=info.as_dict() if info else {}, test_dataset_ids=splits,
            created_by=actor)
        model.next_version += 1
        model.updated_at = utcnow()
        await self.repo.add(version)
        await outbox.add(self.session, ModelRegistered(
            model_version_id=version.id, name=name, version=version.version, format=fmt,
            object_key=version.object_key, task_id=task_id, function=model.function,
            test_dataset_ids=[uuid.UUID(d) for d in splits], evaluate_on_dataset_id=evaluate_on),
            **(correlation or {}))
        return version

    async def _model_for_update(self, name: str, function: str | None) -> RegisteredModel:
        """The model row, locked (PostgreSQL) so that concurrent uploads number versions one after the
        other; created if new — a concurrent creation of the same name loses the race in a savepoint."""
        model = await self.repo.model_by_name(name, for_update=True)
        if model is None:
            try:
                async with self.session.begin_nested():
                    model = RegisteredModel(name=name, function=function, description="", tags=[], next_version=1)
                    await self.repo.add(model)
            except IntegrityError:
                model = await self.repo.model_by_name(name, for_update=True)
                assert model is not None
        return model

    def check_source(self, key: str) -> str:
        if "://" in key or key.startswith(("//", "\\\\")):
            raise SourceNotAllowed("models are imported from MLife's object store only, not from URLs")
        validate_key(key)
        if not any(key.startswith(prefix) for prefix in self.settings.model_source_prefixes):
            raise SourceNotAllowed(f"the key must start with one of {self.settings.model_source_prefixes}")
        return key

    async def import_key(self, name: str, key: str, raw_store: ObjectStore, **kw: Any) -> ModelVersion:
        self.check_source(key)
        info = await raw_store.stat(key)
        if info is None:
            raise ModelNotFound(f"no object under {key!r}")
        if info.size > self.settings.model_max_bytes:
            raise PayloadTooLarge(f"the model is {info.size} bytes; the limit is {self.settings.model_max_bytes}")
        with scratch_dir() as tmp:
            path = await download(raw_store, key, tmp / "model.onnx")
            kw.setdefault("lineage", {})["source_key"] = key
            return await self.register(name, path, **kw)

    async def register_upload(self, d: ModelUploaded, raw_store: ObjectStore,
                              correlation: dict[str, Any]) -> ModelVersion | None:
        """A training task's model (`model.uploaded`) as a new version, once per task; a refused artifact (a
        pickle, garbage, a key outside MLife's storage) is logged and leaves nothing behind."""
        if await self.repo.version_by_task(d.task_id) is not None:
            return None
        fmt = d.format.lower()
        try:
            # A savepoint: a rejected upload must leave nothing behind, yet the event is still consumed.
            async with self.session.begin_nested():
                return await self.import_key(
                    d.model_name, d.object_key, raw_store, source="mtt", actor="mtt",
                    fmt="onnx" if fmt == "onnx" else fmt, task_id=d.task_id, metrics=d.metrics,
                    function=d.function, test_dataset_ids=list(d.test_dataset_ids),
                    lineage={"task_id": str(d.task_id), "uploaded_md5": d.md5}, correlation=correlation)
        except MLifeError as exc:  # refused, never retried, never executed
            log.warning("model_upload_rejected", task_id=str(d.task_id), model=d.model_name, key=d.object_key,
                        error=str(exc.message))
            return None

    async def upload(self, name: str, chunks: AsyncIterator[bytes], **kw: Any) -> ModelVersion:
        """Register a model streamed in (an upload's body), refused once it grows past `model_max_bytes`."""
        check_name(name)
        limit = self.settings.model_max_bytes
        with scratch_dir() as tmp:
            path, size = tmp / "upload.onnx", 0
            with path.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"the model is larger than {limit} bytes")
                    await asyncio.to_thread(fh.write, chunk)
            return await self.register(name, path, **kw)

    async def docker_context(self, version_id: uuid.UUID, raw_store: ObjectStore) -> bytes:
        """The Docker build context of a version (Dockerfile, model, minimal server) as a tar."""
        version = await self.get_version(version_id)
        with scratch_dir() as tmp:
            path = await download(raw_store, version.object_key, tmp / "model.onnx")
            return await asyncio.to_thread(build_context, version, path)

    # ---- reading -------------------------------------------------------------------------------

    async def models(self, name: str | None, limit: int) -> Sequence[RegisteredModel]:
        return await self.repo.search_models(name, limit)

    async def model_detail(self, name: str) -> s.ModelDetail:
        """A model with its versions and aliases."""
        model = await self.get_model(name)
        versions = await self.repo.versions_of(model.id)
        by_id = {v.id: v for v in versions}
        aliases = [s.AliasRead(alias=a.alias, version_id=a.version_id, version=by_id[a.version_id].version,
                               updated_at=a.updated_at) for a in await self.repo.aliases(model.id)]
        return s.ModelDetail(**s.ModelRead.model_validate(model).model_dump(), aliases=aliases,
                             versions=[s.VersionRead.model_validate(v) for v in versions])

    async def version_detail(self, version_id: uuid.UUID) -> s.VersionDetail:
        """A version with its lineage: testing results, badcase outcomes, aliases, compression."""
        version = await self.get_version(version_id)
        aliases = [a.alias for a in await self.repo.aliases(version.model_id) if a.version_id == version.id]
        testing = TestingRepository(self.session)
        results = [s.TestingSummary.model_validate(r, from_attributes=True)
                   for r in await testing.results(version.name, version.version)]
        outcomes = await testing.outcomes(version.name, version.version)
        return s.VersionDetail(**s.VersionRead.model_validate(version).model_dump(), aliases=aliases, testing=results,
                               badcase_outcomes={"passed": sum(outcomes.values()),
                                                 "failed": len(outcomes) - sum(outcomes.values())},
                               compression=await self._compression(version))

    async def _compression(self, version: ModelVersion) -> s.CompressionRead | None:
        """How `version` was compressed, and which versions' results on its dataset are still missing."""
        comp = await self.repo.compression_of(version.id)
        if comp is None:
            return None
        compression = s.CompressionRead.model_validate(comp)
        if comp.dataset_id is not None and comp.metric_delta is None:
            testing = TestingRepository(self.session)
            pair = await self.repo.versions([comp.source_version_id, comp.compressed_version_id])
            compression.waiting_for = [f"{v.name} v{v.version}" for v in pair.values()
                                       if await testing.latest_on(v.name, v.version, comp.dataset_id) is None]
        return compression

    async def alias_history(self, name: str, alias: str | None) -> Sequence[AliasChange]:
        model = await self.get_model(name)
        return await self.repo.alias_history(model.id, alias)

    async def get_version(self, version_id: uuid.UUID) -> ModelVersion:
        version = await self.repo.version(version_id)
        if version is None:
            raise ModelNotFound(f"no model version {version_id}")
        return version

    async def get_model(self, name: str) -> RegisteredModel:
        model = await self.repo.model_by_name(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r}")
        return model

    async def update_model(self, name: str, changes: dict[str, Any]) -> RegisteredModel:
        model = await self.get_model(name)
        for key, value in changes.items():
            if key == "tags":
                value = sorted(set(value or []))  # null clears the tags
            elif key == "description":
                value = value or ""
            elif key == "function":
                value = (value or "").strip()
                if not value:
                    raise Unprocessable("a model's function cannot be cleared; give the function it serves")
            setattr(model, key, value)
        model.updated_at = utcnow()
        await self.session.flush()
        return model

    async def update_version(self, version_id: uuid.UUID, changes: dict[str, Any]) -> ModelVersion:
        version = await self.get_version(version_id)
        for key, value in changes.items():
            if key == "tags":
                value = sorted(set(value))
            elif key == "test_dataset_ids":
                value = [str(d) for d in dict.fromkeys(value or [])]
            setattr(version, key, value)
        await self.session.flush()
        return version

    async def search(self, *, name: str | None, tag: str | None, metric: str | None, min_value: float | None,
                     max_value: float | None, limit: int) -> list[ModelVersion]:
        rows = await self.repo.search_versions(name, limit=5000)
        out = []
        for v in rows:
            if tag and tag not in v.tags:
                continue
            if metric:
                value = v.metrics.get(metric)
                if value is None or (min_value is not None and value < min_value) or (
                        max_value is not None and value > max_value):
                    continue
            out.append(v)
        if metric:
            out.sort(key=lambda v: v.metrics[metric], reverse=True)
        return out[:limit]
