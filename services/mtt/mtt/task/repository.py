from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError

from mlife_shared.db import utcnow
from mlife_shared.repository import Repository
from mtt.task.models import GroupedDataset, RegisteredModel, RunRequest, Task

Projection = TypeVar("Projection", GroupedDataset, RegisteredModel)


class TaskRepository(Repository):
    async def task(self, task_id: uuid.UUID, *, for_update: bool = False) -> Task | None:
        return await (self.get_for_update(Task, task_id) if for_update else self.get(Task, task_id))

    async def by_dedup(self, key: str) -> Task | None:
        task: Task | None = await self.one(select(Task).where(Task.dedup_key == key))
        return task

    async def tasks(self, *, kind: str | None, status: str | None, limit: int, function: str | None = None,
                    model_version_id: uuid.UUID | None = None) -> Sequence[Task]:
        stmt = select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
        if kind:
            stmt = stmt.where(Task.kind == kind)
        if status:
            stmt = stmt.where(Task.status == status)
        if function:
            stmt = stmt.where(Task.function == function)
        if model_version_id:
            stmt = stmt.where(Task.model_version_id == model_version_id)
        return (await self.session.scalars(stmt)).all()

    async def refresh_flags(self, task_id: uuid.UUID) -> tuple[str, bool] | None:
        row = (await self.session.execute(select(Task.status, Task.cancel_requested).where(Task.id == task_id))).first()
        return (row[0], row[1]) if row else None

    def _claimable(self, statement: Select[Any]) -> Select[Any]:
        """`FOR UPDATE SKIP LOCKED` on PostgreSQL, so that two workers take different rows; SQLite serialises
        writers already."""
        return self.lock(statement, skip_locked=True)

    async def stale_running(self, before: datetime, limit: int = 100) -> Sequence[Task]:
        stmt = (select(Task).where(Task.status == "running", Task.heartbeat_at < before)
                .order_by(Task.heartbeat_at).limit(limit))
        return (await self.session.scalars(self._claimable(stmt))).all()

    async def heartbeat(self, task_id: uuid.UUID, attempt: int) -> None:
        await self.session.execute(update(Task).where(Task.id == task_id, Task.attempt == attempt)
                                   .values(heartbeat_at=utcnow()))

    async def pending_run_requests(self, limit: int = 100) -> Sequence[RunRequest]:
        stmt = (select(RunRequest).where(RunRequest.published_at.is_(None))
                .order_by(RunRequest.created_at).limit(limit))
        return (await self.session.scalars(self._claimable(stmt))).all()

    # projections
    async def _insert_once(self, row: Projection, key: uuid.UUID) -> tuple[Projection, bool]:
        """Insert a projection row unless it exists; → (the row, inserted). A concurrent insert of the same key
        (another consumer handling the same fact) is not an error: its row is returned."""
        existing = await self.get(type(row), key)
        if existing is not None:
            return existing, False
        try:
            async with self.session.begin_nested():
                await self.add(row)
            return row, True
        except IntegrityError:
            existing = await self.session.get(type(row), key, populate_existing=True)
            if existing is None:
                raise
            return existing, False

    async def upsert_dataset(self, ds: GroupedDataset) -> GroupedDataset:
        row, _ = await self._insert_once(ds, ds.dataset_id)
        return row

    async def dataset(self, dataset_id: uuid.UUID) -> GroupedDataset | None:
        return await self.get(GroupedDataset, dataset_id)

    async def group_siblings(self, group_id: uuid.UUID, purpose: str) -> Sequence[GroupedDataset]:
        stmt = (select(GroupedDataset).where(GroupedDataset.group_id == group_id, GroupedDataset.purpose == purpose)
                .order_by(GroupedDataset.dataset_id))
        return (await self.session.scalars(stmt)).all()

    async def current_badcase_test_set(self, function: str) -> GroupedDataset | None:
        """The latest badcase test set of `function` (each function has its own)."""
        stmt = (select(GroupedDataset)
                .where(GroupedDataset.is_badcase_test_set.is_(True), GroupedDataset.function == function)
                .order_by(GroupedDataset.grouped_at.desc(), GroupedDataset.version.desc()).limit(1))
        found: GroupedDataset | None = await self.one(stmt)
        return found

    async def upsert_model(self, m: RegisteredModel) -> RegisteredModel:
        """Insert the version, or fill in what an earlier event of it did not say (function, test splits)."""
        existing, inserted = await self._insert_once(m, m.model_version_id)
        if inserted:
            return m
        if existing.function is None and m.function is not None:
            existing.function = m.function
        if not existing.test_dataset_ids and m.test_dataset_ids:
            existing.test_dataset_ids = m.test_dataset_ids
        if existing.task_id is None and m.task_id is not None:
            existing.task_id = m.task_id
        return existing

    async def model(self, model_version_id: uuid.UUID) -> RegisteredModel | None:
        return await self.get(RegisteredModel, model_version_id)

    async def latest_model(self, name: str) -> RegisteredModel | None:
        stmt = (select(RegisteredModel).where(RegisteredModel.name == name)
                .order_by(RegisteredModel.registered_at.desc()).limit(1))
        found: RegisteredModel | None = await self.one(stmt)
        return found
