from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, insert, select

from dam.dataset.models import Dataset, DatasetItem
from mlife_shared.repository import Repository


class DatasetRepository(Repository):

    async def next_version(self, name: str, purpose: str) -> int:
        current = await self.session.scalar(select(func.max(Dataset.version)).where(
            Dataset.name == name, Dataset.purpose == purpose))
        return int(current or 0) + 1

    async def add_with_items(self, dataset: Dataset, items: Sequence[tuple[str, str | None]]) -> Dataset:
        await self.add(dataset)
        for start in range(0, len(items), 5000):
            await self.session.execute(insert(DatasetItem), [
                {"dataset_id": dataset.id, "md5": m, "label": label} for m, label in items[start:start + 5000]])
        return dataset

    async def find(self, *, name: str | None, limit: int, offset: int, function: str | None = None,
                   is_badcase_test_set: bool | None = None) -> list[Dataset]:
        stmt = select(Dataset)
        if name:
            stmt = stmt.where(Dataset.name == name)
        if function:
            stmt = stmt.where(Dataset.function == function)
        if is_badcase_test_set is not None:
            stmt = stmt.where(Dataset.is_badcase_test_set.is_(is_badcase_test_set))
        return list(await self.session.scalars(stmt.order_by(Dataset.created_at.desc()).limit(limit).offset(offset)))

    async def shared(self, a: uuid.UUID, b: uuid.UUID) -> list[str]:
        other = select(DatasetItem.md5).where(DatasetItem.dataset_id == b)
        stmt = select(DatasetItem.md5).where(DatasetItem.dataset_id == a, DatasetItem.md5.in_(other)).order_by(DatasetItem.md5)
        return list(await self.session.scalars(stmt))

    async def current_badcase_test_sets(self, function: str | None) -> list[Dataset]:
        """The current badcase test set of `function` (the latest test dataset frozen from its badcases), or of
        every function when it is None."""
        base = select(Dataset).where(Dataset.is_badcase_test_set.is_(True), Dataset.purpose == "test")
        if function is not None:
            functions = [function]
        else:
            functions = list(await self.session.scalars(
                select(Dataset.function).where(Dataset.is_badcase_test_set.is_(True), Dataset.function.is_not(None))
                .distinct().order_by(Dataset.function)))
        out = []
        for f in functions:
            found = (await self.session.scalars(base.where(Dataset.function == f).order_by(
                Dataset.created_at.desc(), Dataset.version.desc()).limit(1))).one_or_none()
            if found is not None:
                out.append(found)
        return out

    async def item_ids(self, dataset_ids: Sequence[uuid.UUID]) -> set[str]:
        return set(await self.session.scalars(select(DatasetItem.md5).where(DatasetItem.dataset_id.in_(dataset_ids))))
