"""Tasks made from events, per function (docs/functions.md): `dataset.grouped` (a train set → its training task;
a test set → a testing task of the default model), `model.registered` (the version is tested on its function's
current badcase test set and on its test split(s), nothing else) and `testing.requested` (the gate asks for one
such result). Never commits: the consumer's unit of work does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from mlife_shared.db import utcnow
from mlife_shared.errors import MLifeError
from mlife_shared.events.contracts import DatasetGrouped, ModelRegistered, SetKind, TestingFailed, TestingRequested
from mlife_shared.messaging import outbox
from mtt.task.exceptions import DatasetNotSeenYet, InvalidTask
from mtt.task.models import GroupedDataset, RegisteredModel, Task
from mtt.task.schemas import DatasetRef, ModelRef, TaskCreate
from mtt.task.service import TaskUseCase, named_evaluator
from mtt.task.validation import check_code_location

log = structlog.get_logger(__name__)

# What a version's testing tasks take over from the params of the task that trained it: how to read the items
# (and the named evaluator's own settings, `params[<its name>]`).
EVALUATOR_PARAMS = ("preprocess", "evaluator", "detection", "segmentation", "keypoints", "target", "tolerance")


@dataclass(frozen=True)
class Target:
    """A set to test a version on."""

    dataset_id: uuid.UUID
    set_kind: SetKind
    manifest_key: str | None = None


def dataset_label(ds: GroupedDataset | None, dataset_id: uuid.UUID) -> str:
    """`digits-demo v1`, `badcase test set: digits v4`, or the id when MTT has not seen the dataset."""
    if ds is None:
        return f"dataset {str(dataset_id)[:8]}"
    return f"{ds.name or f'dataset {str(dataset_id)[:8]}'} v{ds.version}"


def test_task_name(model: RegisteredModel, ds: GroupedDataset | None, dataset_id: uuid.UUID, set_kind: str) -> str:
    """`regression digits v3 on badcase test set: digits v4`, `regression digits v3 on test split digits-demo v1`."""
    label = dataset_label(ds, dataset_id)
    if set_kind == "test_split":
        label = f"test split {label}"
    elif set_kind == "badcase_test_set" and ds is not None and not ds.name:
        label = f"badcase test set: {ds.function or '?'} v{ds.version}"
    return f"regression {model.name} v{model.version} on {label}"[:200]


def model_ref(m: RegisteredModel) -> ModelRef:
    return ModelRef(name=m.name, version=m.version, object_key=m.object_key, format=m.format,
                    model_version_id=m.model_version_id)


class AutomaticTasks(TaskUseCase):
    # ---- dataset.grouped -------------------------------------------------------------------------

    async def dataset_grouped(self, d: DatasetGrouped) -> None:
        await self.repo.upsert_dataset(GroupedDataset(
            dataset_id=d.dataset_id, version=d.version, purpose=d.purpose, manifest_key=d.manifest_key,
            item_count=d.item_count, is_badcase_test_set=d.is_badcase_test_set, group_id=d.group_id, name=d.name,
            function=d.function, modality=d.modality, grouped_at=utcnow()))
        dedup = f"grouped:{d.dataset_id}"
        if await self.repo.by_dedup(dedup) is not None:
            return
        if d.purpose == "test" and d.group_id is not None and not d.is_badcase_test_set:
            await self._attach_to_training(d, d.group_id)
        body = await (self._training_task(d) if d.purpose == "train" else self._default_test_task(d))
        await self._create_once(body, "dataset.grouped", dedup)

    async def _training_task(self, d: DatasetGrouped) -> TaskCreate:
        code = self.settings.default_train_code or None
        if code:
            try:
                check_code_location(code, self.settings.code_roots)
            except InvalidTask as exc:
                log.warning("default_train_code_invalid", error=exc.message)
                code = None
        command = (self.settings.default_train_command or None) if code else None
        siblings = await self.repo.group_siblings(d.group_id, "test") if d.group_id is not None else []
        refs = [DatasetRef(dataset_id=d.dataset_id, manifest_key=d.manifest_key, purpose="train")]
        refs += [DatasetRef(dataset_id=s.dataset_id, manifest_key=s.manifest_key, purpose="test")
                 for s in siblings if not s.is_badcase_test_set]
        return TaskCreate(kind="train", name=f"train {d.name or 'dataset'} v{d.version}", datasets=refs,
                          function=d.function, code_location=code, command=command,
                          params=dict(self.settings.default_train_params),
                          run=bool(self.settings.auto_run and code and command))

    async def _default_test_task(self, d: DatasetGrouped) -> TaskCreate:
        """A testing task of the default model's latest version — a draft when there is none, or when the model
        serves another function than the set's."""
        name = self.settings.default_test_model
        model = await self.repo.latest_model(name) if name else None
        if model is not None and model.function and d.function and model.function != d.function:
            model = None
        ref = DatasetRef(dataset_id=d.dataset_id, manifest_key=d.manifest_key, purpose=d.purpose)
        label = f"{d.name or 'dataset'} v{d.version}"
        return TaskCreate(kind="test", datasets=[ref], function=d.function,
                          name=f"test {model.name} v{model.version} on {label}"[:200] if model else f"test on {label}",
                          model=model_ref(model) if model else None, params=dict(self.settings.default_test_params),
                          run=bool(self.settings.auto_run and model))

    async def _attach_to_training(self, d: DatasetGrouped, group_id: uuid.UUID) -> None:
        """The test set of a grouping that arrives after its train set joins that training task (not yet started)."""
        for train in await self.repo.group_siblings(group_id, "train"):
            task = await self.repo.by_dedup(f"grouped:{train.dataset_id}")
            if task is None or task.status not in ("draft", "ready", "queued"):
                continue
            if any(ds["dataset_id"] == str(d.dataset_id) for ds in task.datasets):
                continue
            task.datasets = [*task.datasets, {"dataset_id": str(d.dataset_id), "manifest_key": d.manifest_key,
                                              "purpose": "test", "version": d.version, "is_badcase_test_set": False}]
            task.updated_at = utcnow()

    # ---- model.registered / testing.requested ----------------------------------------------------

    async def _register(self, *, model_version_id: uuid.UUID, name: str, version: str, format: str,
                        object_key: str, task_id: uuid.UUID | None, function: str | None,
                        test_dataset_ids: list[uuid.UUID]) -> tuple[RegisteredModel, Task | None]:
        """The version in MTT's projection, with its function (declared, else its training task's) and test
        splits (declared, else its training task's); → (version, the task that trained it)."""
        model = await self.repo.upsert_model(RegisteredModel(
            model_version_id=model_version_id, name=name, version=version, format=format, object_key=object_key,
            task_id=task_id, function=function, test_dataset_ids=[str(i) for i in test_dataset_ids] or None,
            registered_at=utcnow()))
        source = await self.repo.task(model.task_id) if model.task_id is not None else None
        if source is not None:
            if model.function is None:
                model.function = source.function
            if not model.test_dataset_ids:
                model.test_dataset_ids = [str(i) for i in await self.tasks.test_splits(source)] or None
        return model, source

    async def model_registered(self, d: ModelRegistered) -> None:
        model, source = await self._register(
            model_version_id=d.model_version_id, name=d.name, version=d.version, format=d.format,
            object_key=d.object_key, task_id=d.task_id, function=d.function, test_dataset_ids=d.test_dataset_ids)
        if (why := self._untestable(d.format, source)) is not None:
            log.info("model_not_tested", reason=why, format=d.format)
            return
        targets: list[Target] = []
        if model.function:
            badcase = await self.repo.current_badcase_test_set(model.function)
            if badcase is not None:
                targets.append(Target(badcase.dataset_id, "badcase_test_set", badcase.manifest_key))
        keys = {ds["dataset_id"]: ds["manifest_key"] for ds in source.datasets} if source is not None else {}
        targets += [Target(uuid.UUID(i), "test_split", keys.get(i)) for i in model.test_dataset_ids or []]
        if d.evaluate_on_dataset_id is not None:
            targets.append(Target(d.evaluate_on_dataset_id, "other", keys.get(str(d.evaluate_on_dataset_id))))
        seen: set[uuid.UUID] = set()
        for target in targets:
            if target.dataset_id in seen:
                continue
            seen.add(target.dataset_id)
            try:
                await self._test(model, source, target, origin="model.registered", run=self.settings.auto_run)
            except InvalidTask as exc:  # e.g. the manifest vanished: no task, say why
                log.warning("testing_task_skipped", dataset_id=str(target.dataset_id), error=exc.message)

    async def testing_requested(self, d: TestingRequested) -> None:
        """Create (once per version and dataset) and run the testing task the gate asks for; a version MTT cannot
        test says so with `testing.failed`."""
        model, source = await self._register(
            model_version_id=d.model_version_id, name=d.model_name, version=d.model_version, format=d.format,
            object_key=d.object_key, task_id=None, function=d.function, test_dataset_ids=[])
        if (why := self._untestable(d.format, source)) is not None:
            await self._cannot_test(model, d, why, incompatible=True)
            return
        if await self.repo.dataset(d.dataset_id) is None:
            if d.set_kind == "badcase_test_set":  # MSM saw its dataset.grouped: ours is on the way (retried)
                raise DatasetNotSeenYet(f"the badcase test set {d.dataset_id} has not reached MTT yet")
            await self._cannot_test(model, d, f"MTT knows no dataset {d.dataset_id} (no dataset.grouped seen)")
            return
        set_kind = d.set_kind if d.set_kind != "other" else await self.tasks.set_kind_of(d.dataset_id,
                                                                                          model.model_version_id)
        try:
            task = await self._test(model, source, Target(d.dataset_id, set_kind), origin="testing.requested",
                                    run=True)
        except InvalidTask as exc:
            await self._cannot_test(model, d, exc.message)
            return
        await self.tasks.rerun(task)  # asked again after a failure: a new attempt

    def _test_params(self, source: Task | None) -> dict[str, Any]:
        """A version's testing tasks' params: the default ones, and how its training task read the items."""
        params: dict[str, Any] = dict(self.settings.default_test_params)
        if source is not None:
            named = source.params.get("evaluator")
            taken = (*EVALUATOR_PARAMS, named) if isinstance(named, str) else EVALUATOR_PARAMS
            params.update({k: source.params[k] for k in taken if k in source.params})
        return params

    def _untestable(self, fmt: str, source: Task | None) -> str | None:
        """Why a model of this format cannot be tested by the evaluator its testing tasks would run, or None."""
        try:
            evaluator = named_evaluator(self._test_params(source))
        except MLifeError as exc:
            return str(exc.message)
        formats = evaluator.model_formats if evaluator is not None else ("onnx",)
        if fmt.lower() in formats:
            return None
        shown = ", ".join(f.upper() for f in formats)
        return f"the {evaluator.name if evaluator else 'built-in'} evaluator scores {shown} models; this one is {fmt!r}"

    async def _cannot_test(self, model: RegisteredModel, d: TestingRequested, reason: str, *,
                           incompatible: bool = False) -> None:
        log.warning("testing_request_refused", model_version_id=str(d.model_version_id), reason=reason)
        await outbox.add(self.session, TestingFailed(
            model_name=model.name, model_version=model.version, model_version_id=model.model_version_id,
            dataset_id=d.dataset_id, function=model.function, set_kind=d.set_kind, incompatible=incompatible,
            reason=reason))

    async def _test(self, model: RegisteredModel, source: Task | None, target: Target, *, origin: str,
                    run: bool) -> Task:
        """The testing task of `model` on `target`: one per version and dataset, whichever event asked first."""
        dedup = f"registered:{model.model_version_id}:{target.dataset_id}"
        existing = await self.repo.by_dedup(dedup)
        if existing is not None:
            return existing
        ds = await self.repo.dataset(target.dataset_id)
        params = self._test_params(source)
        body = TaskCreate(kind="test", name=test_task_name(model, ds, target.dataset_id, target.set_kind),
                          function=model.function, model=model_ref(model), params=params, run=run,
                          datasets=[DatasetRef(dataset_id=target.dataset_id, manifest_key=target.manifest_key)])
        return await self._create_once(body, origin, dedup, set_kind=target.set_kind)

    async def _create_once(self, body: TaskCreate, origin: str, dedup: str, set_kind: SetKind | None = None) -> Task:
        """The task of `dedup` (a unique key): created, or the one a concurrent event (another consumer) created
        first — never two."""
        try:
            async with self.session.begin_nested():
                return await self.tasks.create(body, None, origin=origin, dedup_key=dedup, inspect_model=False,
                                               set_kind=set_kind)
        except IntegrityError:
            existing = await self.repo.by_dedup(dedup)
            if existing is None:
                raise
            return existing
