from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select

from dam.quality.models import QualityFinding, QualityRun
from mlife_shared.repository import Page, Repository


class QualityRepository(Repository):
    async def replace(self, document_id: uuid.UUID, version: int, rows: Sequence[dict[str, Any]]) -> None:
        """The findings of a run over this document version, instead of the previous run's."""
        await self.session.execute(delete(QualityFinding).where(QualityFinding.document_id == document_id,
                                                                QualityFinding.document_version == version))
        for start in range(0, len(rows), 2000):
            await self.session.execute(insert(QualityFinding), [dict(r, document_id=document_id, document_version=version)
                                                                for r in rows[start:start + 2000]])

    def _of(self, document_id: uuid.UUID, version: int) -> Any:
        return (QualityFinding.document_id == document_id, QualityFinding.document_version == version)

    async def findings(self, document_id: uuid.UUID, version: int, *, severity: str | None, cleaner: str | None,
                       limit: int, offset: int) -> Page[QualityFinding]:
        stmt = select(QualityFinding).where(*self._of(document_id, version))
        if severity:
            stmt = stmt.where(QualityFinding.severity == severity)
        if cleaner:
            stmt = stmt.where(QualityFinding.cleaner == cleaner)
        return await self.page(stmt.order_by(QualityFinding.position, QualityFinding.cleaner, QualityFinding.code),
                                  limit=limit, offset=offset)

    async def counts(self, document_id: uuid.UUID, version: int) -> list[tuple[str, str, str, int]]:
        """(cleaner, code, severity, count) of the version's findings."""
        rows = await self.session.execute(
            select(QualityFinding.cleaner, QualityFinding.code, QualityFinding.severity, func.count())
            .where(*self._of(document_id, version))
            .group_by(QualityFinding.cleaner, QualityFinding.code, QualityFinding.severity)
            .order_by(QualityFinding.cleaner, QualityFinding.code))
        return [(c, k, s, int(n)) for c, k, s, n in rows]

    async def run(self, document_id: uuid.UUID, version: int) -> QualityRun | None:
        return await self.get(QualityRun, (document_id, version))

    async def record_run(self, values: dict[str, Any]) -> QualityRun:
        """The run's row, instead of the previous run's over the same version."""
        await self.session.execute(delete(QualityRun).where(QualityRun.document_id == values["document_id"],
                                                            QualityRun.document_version == values["document_version"]))
        return await self.add(QualityRun(**values))
