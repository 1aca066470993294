from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dam.document.models import Document, DocumentRow, DocumentVersion
from dam.file.models import File


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document_id: uuid.UUID, *, lock: bool = False) -> Document | None:
        stmt = select(Document).where(Document.id == document_id)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def by_name(self, name: str, *, lock: bool = False) -> Document | None:
        stmt = select(Document).where(Document.name == name)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def add(self, doc: Document) -> Document:
        self.session.add(doc)
        await self.session.flush()
        return doc

    async def list(self, *, q: str | None, kind: str | None, limit: int, offset: int,
                   function: str | None = None) -> list[Document]:
        stmt = select(Document)
        if q:
            pattern = f"%{q.lower()}%"
            stmt = stmt.where(or_(func.lower(Document.name).like(pattern), func.lower(Document.description).like(pattern)))
        if kind:
            stmt = stmt.where(Document.kind == kind)
        if function:
            stmt = stmt.where(Document.function == function)
        return list(await self.session.scalars(stmt.order_by(Document.updated_at.desc()).limit(limit).offset(offset)))

    async def version(self, document_id: uuid.UUID, version: int) -> DocumentVersion | None:
        return (await self.session.scalars(select(DocumentVersion).where(
            DocumentVersion.document_id == document_id, DocumentVersion.version == version))).one_or_none()

    async def versions(self, document_id: uuid.UUID) -> list[DocumentVersion]:
        return list(await self.session.scalars(select(DocumentVersion).where(
            DocumentVersion.document_id == document_id).order_by(DocumentVersion.version)))

    async def add_version(self, version: DocumentVersion, rows: Sequence[dict[str, Any]]) -> DocumentVersion:
        self.session.add(version)
        await self.session.flush()
        for start in range(0, len(rows), 2000):
            chunk = [{"features": None, **r, "id": uuid.uuid4(), "version_id": version.id}
                     for r in rows[start:start + 2000]]
            await self.session.execute(insert(DocumentRow), chunk)
        return version

    def rows_statement(self, version_ids: Sequence[uuid.UUID], *, labels: Sequence[str] | None = None,
                       has_annotation: bool | None = None, media_types: Sequence[str] | None = None,
                       min_size: int | None = None, max_size: int | None = None, q: str | None = None,
                       md5s: Sequence[str] | None = None) -> Select[tuple[DocumentRow, File | None]]:
        stmt = (select(DocumentRow, File).outerjoin(File, File.md5 == DocumentRow.md5)
                .where(DocumentRow.version_id.in_(version_ids)))
        if labels:
            stmt = stmt.where(DocumentRow.label.in_(labels))
        if has_annotation is not None:
            stmt = stmt.where(DocumentRow.annotation.is_not(None) if has_annotation else DocumentRow.annotation.is_(None))
        if media_types:
            stmt = stmt.where(File.media_type.in_(media_types))
        if min_size is not None:
            stmt = stmt.where(File.size >= min_size)
        if max_size is not None:
            stmt = stmt.where(File.size <= max_size)
        if md5s:
            stmt = stmt.where(DocumentRow.md5.in_(md5s))
        if q:
            for word in q.lower().split()[:8]:
                stmt = stmt.where(DocumentRow.search_text.like(f"%{word}%"))
        return stmt.order_by(DocumentRow.version_id, DocumentRow.position)

    async def count(self, stmt: Select[Any]) -> int:
        """How many rows a `rows_statement` selects."""
        return int(await self.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)

    async def rows(self, stmt: Select[tuple[DocumentRow, File | None]], *, limit: int | None = None,
                   offset: int = 0) -> list[tuple[DocumentRow, File | None]]:
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        return [(r, f) for r, f in (await self.session.execute(stmt)).all()]

    async def current_version_ids(
            self, document_ids: Sequence[uuid.UUID] | None) -> dict[uuid.UUID, tuple[Document, DocumentVersion]]:
        stmt = select(Document, DocumentVersion).join(DocumentVersion, (DocumentVersion.document_id == Document.id)
                                                      & (DocumentVersion.version == Document.current_version))
        if document_ids:
            stmt = stmt.where(Document.id.in_(document_ids))
        return {v.id: (d, v) for d, v in (await self.session.execute(stmt)).all()}
