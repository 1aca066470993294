"""Tasks made from events: `dataset.grouped` (train → training task; test → testing task for the default
model) and `model.registered` (regression testing on the badcase test set and the task's own test set)."""

from __future__ import annotations

import uuid
from typing import cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered
from mlife_shared.db import utcnow
from mtt.config import Settings
from mtt.task.exceptions import InvalidTask
from mtt.task.models import GroupedDataset, RegisteredModel
from mtt.task.repository import TaskRepository
from mtt.task.schemas import DatasetRef, ModelRef, TaskCreate
from mtt.task.service import TaskService, check_code_location

log = structlog.get_logger(__name__)


async def on_dataset_grouped(event: Envelope[DatasetGrouped], session: AsyncSession, ctx: ServiceContext) -> None:
    d = event.data
    settings = cast(Settings, ctx.settings)
    repo = TaskRepository(session)
    await repo.upsert_dataset(GroupedDataset(dataset_id=d.dataset_id, version=d.version, purpose=d.purpose,
                                             manifest_key=d.manifest_key, item_count=d.item_count,
                                             is_badcase_test_set=d.is_badcase_test_set, group_id=d.group_id,
                                             name=d.name, grouped_at=utcnow()))
    svc = TaskService(session, settings, ctx.store)
    dedup = f"grouped:{d.dataset_id}"
    if await repo.by_dedup(dedup) is not None:
        return
    ref = DatasetRef(dataset_id=d.dataset_id, manifest_key=d.manifest_key, purpose=d.purpose)
    if d.purpose == "test" and d.group_id is not None and not d.is_badcase_test_set:
        await _attach_to_training(repo, d)
    if d.purpose == "train":
        code = settings.default_train_code or None
        if code:
            try:
                check_code_location(code)
            except InvalidTask as exc:
                log.warning("default_train_code_invalid", error=exc.message)
                code = None
        command = settings.default_train_command or None if code else None
        siblings = await repo.group_siblings(d.group_id, "test") if d.group_id is not None else []
        refs = [ref] + [DatasetRef(dataset_id=s.dataset_id, manifest_key=s.manifest_key, purpose="test")
                        for s in siblings if not s.is_badcase_test_set]
        body = TaskCreate(kind="train", name=f"train {d.name or 'dataset'} v{d.version}", datasets=refs,
                          code_location=code,
                          command=command, params=dict(settings.default_train_params),
                          run=bool(settings.auto_run and code and command))
    else:
        model = await repo.latest_model(settings.default_test_model) if settings.default_test_model else None
        body = TaskCreate(kind="test", name=f"test on dataset v{d.version}", datasets=[ref],
                          model=_ref(model) if model else None, params=dict(settings.default_test_params),
                          run=bool(settings.auto_run and model))
    await svc.create(body, None, origin="dataset.grouped", dedup_key=dedup, inspect_model=False)


async def _attach_to_training(repo: TaskRepository, d: DatasetGrouped) -> None:
    """The test set of a grouping that arrives after its train set joins that training task (not yet started)."""
    for train in await repo.group_siblings(d.group_id, "train"):  # type: ignore[arg-type]
        task = await repo.by_dedup(f"grouped:{train.dataset_id}")
        if task is None or task.status not in ("draft", "ready", "queued"):
            continue
        if any(ds["dataset_id"] == str(d.dataset_id) for ds in task.datasets):
            continue
        task.datasets = [*task.datasets, {"dataset_id": str(d.dataset_id), "manifest_key": d.manifest_key,
                                          "purpose": "test", "version": d.version, "is_badcase_test_set": False}]
        task.updated_at = utcnow()


def _ref(m: RegisteredModel) -> ModelRef:
    return ModelRef(name=m.name, version=m.version, object_key=m.object_key, format=m.format,
                    model_version_id=m.model_version_id)


async def on_model_registered(event: Envelope[ModelRegistered], session: AsyncSession, ctx: ServiceContext) -> None:
    d = event.data
    settings = cast(Settings, ctx.settings)
    repo = TaskRepository(session)
    model = await repo.upsert_model(RegisteredModel(model_version_id=d.model_version_id, name=d.name,
                                                    version=d.version, format=d.format, object_key=d.object_key,
                                                    task_id=d.task_id, registered_at=utcnow()))
    if d.format.lower() != "onnx":
        log.info("model_not_tested", reason="the built-in evaluator runs ONNX only", format=d.format)
        return
    targets: list[tuple[uuid.UUID, str | None]] = []
    badcase = await repo.latest_badcase_test_set()
    if badcase is not None:
        targets.append((badcase.dataset_id, badcase.manifest_key))
    params: dict = dict(settings.default_test_params)
    function = None
    if d.task_id is not None:
        source = await repo.get(d.task_id)
        if source is not None:
            function = source.function
            if "preprocess" in source.params:
                params.setdefault("preprocess", source.params["preprocess"])
            targets += [(uuid.UUID(ds["dataset_id"]), ds["manifest_key"]) for ds in source.datasets
                        if ds.get("purpose") == "test"]
            for ds in source.datasets:  # the test sets grouped with its train set
                known = await repo.dataset(uuid.UUID(ds["dataset_id"]))
                if known is not None and known.group_id is not None:
                    siblings = await repo.group_siblings(known.group_id, "test")
                    targets += [(s.dataset_id, s.manifest_key) for s in siblings if not s.is_badcase_test_set]
    if d.evaluate_on_dataset_id is not None:
        known = await repo.dataset(d.evaluate_on_dataset_id)
        if known is not None:
            targets.append((known.dataset_id, known.manifest_key))
    svc = TaskService(session, settings, ctx.store)
    seen: set[uuid.UUID] = set()
    for dataset_id, key in targets:
        if dataset_id in seen:
            continue
        seen.add(dataset_id)
        dedup = f"registered:{d.model_version_id}:{dataset_id}"
        if await repo.by_dedup(dedup) is not None:
            continue
        body = TaskCreate(kind="test", name=f"regression {d.name}:{d.version}", function=function,
                          datasets=[DatasetRef(dataset_id=dataset_id, manifest_key=key)], model=_ref(model),
                          params=params, run=settings.auto_run)
        try:
            await svc.create(body, None, origin="model.registered", dedup_key=dedup, inspect_model=False)
        except InvalidTask as exc:  # e.g. the manifest vanished: no task, say why
            log.warning("regression_task_skipped", dataset_id=str(dataset_id), error=exc.message)
