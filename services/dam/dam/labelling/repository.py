from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select

from dam.labelling.models import LabellingItem, LabellingTask
from mlife_shared.repository import Repository


class LabellingRepository(Repository):
    async def add_with_items(self, task: LabellingTask, items: Sequence[dict[str, Any]]) -> LabellingTask:
        await self.add(task)
        for start in range(0, len(items), 2000):
            await self.session.execute(insert(LabellingItem), [dict(i, task_id=task.id) for i in items[start:start + 2000]])
        return task

    async def items(self, task_id: uuid.UUID) -> list[LabellingItem]:
        return list(await self.session.scalars(select(LabellingItem).where(LabellingItem.task_id == task_id)
                                                .order_by(LabellingItem.position)))

    async def counts(self, task_id: uuid.UUID) -> tuple[int, int]:
        total, done = (await self.session.execute(
            select(func.count(), func.count(LabellingItem.annotated_at)).where(LabellingItem.task_id == task_id))).one()
        return int(total), int(done)

    async def by_external(self, connector: str, project: str, external_id: str
                          ) -> tuple[LabellingTask, LabellingItem] | None:
        """The task and item a tool's (project, task id) names."""
        row = (await self.session.execute(
            select(LabellingTask, LabellingItem).join(LabellingItem, LabellingItem.task_id == LabellingTask.id)
            .where(LabellingItem.external_id == external_id, LabellingTask.connector == connector,
                   LabellingTask.external_project == project))).first()
        return (row[0], row[1]) if row else None

    async def find(self, *, status: str | None, document_id: uuid.UUID | None, limit: int, offset: int) -> list[LabellingTask]:
        stmt = select(LabellingTask)
        if status:
            stmt = stmt.where(LabellingTask.status == status)
        if document_id:
            stmt = stmt.where(LabellingTask.document_id == document_id)
        return list(await self.session.scalars(stmt.order_by(LabellingTask.created_at.desc()).limit(limit).offset(offset)))

    async def open_in_a_tool(self) -> list[uuid.UUID]:
        return list(await self.session.scalars(select(LabellingTask.id).where(
            LabellingTask.status == "open", LabellingTask.external_project.is_not(None))))
