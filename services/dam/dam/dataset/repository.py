from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dam.dataset.models import Dataset, DatasetItem


class DatasetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, dataset_id: uuid.UUID) -> Dataset | None:
        return await self.session.get(Dataset, dataset_id)

    async def next_version(self, name: str, purpose: str) -> int:
        current = await self.session.scalar(select(func.max(Dataset.version)).where(
            Dataset.name == name, Dataset.purpose == purpose))
        return int(current or 0) + 1

    async def add(self, dataset: Dataset, items: Sequence[tuple[str, str | None]]) -> Dataset:
        self.session.add(dataset)
        await self.session.flush()
        for start in range(0, len(items), 5000):
            await self.session.execute(insert(DatasetItem), [
                {"dataset_id": dataset.id, "md5": m, "label": label} for m, label in items[start:start + 5000]])
        return dataset

    async def list(self, *, name: str | None, limit: int, offset: int) -> list[Dataset]:
        stmt = select(Dataset)
        if name:
            stmt = stmt.where(Dataset.name == name)
        return list(await self.session.scalars(stmt.order_by(Dataset.created_at.desc()).limit(limit).offset(offset)))

    async def shared(self, a: uuid.UUID, b: uuid.UUID) -> list[str]:
        other = select(DatasetItem.md5).where(DatasetItem.dataset_id == b)
        stmt = select(DatasetItem.md5).where(DatasetItem.dataset_id == a, DatasetItem.md5.in_(other)).order_by(DatasetItem.md5)
        return list(await self.session.scalars(stmt))
