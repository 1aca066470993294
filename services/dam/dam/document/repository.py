from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, insert, or_, select, update

from dam.document.models import Document, DocumentRow, DocumentVersion
from dam.file.models import File, FilePath
from mlife_shared.repository import Repository


def added_by(v: DocumentVersion) -> Select[uuid.UUID]:
    """The ids of the versions whose rows `v` holds: itself, and for an appended version those since its `since`."""
    return select(DocumentVersion.id).where(DocumentVersion.document_id == v.document_id,
                                            DocumentVersion.version.between(v.since or v.version, v.version))


def in_version(v: DocumentVersion) -> ColumnElement[bool]:
    """A row of version `v`: its own, or (appended) added since `since` and not retired by `v`."""
    if v.since is None or v.since == v.version:
        return DocumentRow.version_id == v.id
    return and_(DocumentRow.version_id.in_(added_by(v)),
                or_(DocumentRow.retired_in.is_(None), DocumentRow.retired_in > v.version))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class DocumentRepository(Repository):
    async def paths_containing(self, names: Collection[str]) -> list[tuple[str, str]]:
        """(path, md5) of the uploaded paths that contain one of `names` (the candidates of a match by stem)."""
        keys = sorted(set(names))
        out: list[tuple[str, str]] = []
        for start in range(0, len(keys), 100):
            rows = await self.session.execute(select(FilePath.path, FilePath.md5).where(
                or_(*[FilePath.path.like(_like(k), escape="\\") for k in keys[start:start + 100]])))
            out += [(p, m) for p, m in rows]
        return out

    async def by_name(self, name: str, *, lock: bool = False) -> Document | None:
        stmt = self.lock(select(Document).where(Document.name == name), for_update=lock)
        return (await self.session.scalars(stmt)).one_or_none()

    async def find(self, *, q: str | None, kind: str | None, limit: int, offset: int,
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

    async def add_version(self, version: DocumentVersion, rows: Sequence[dict[str, Any]], *,
                          first_position: int = 0) -> DocumentVersion:
        """The version and the rows it adds, numbered from `first_position`."""
        await self.add(version)
        for start in range(0, len(rows), 2000):
            chunk = [{"features": None, **r, "id": uuid.uuid4(), "version_id": version.id, "position": first_position + i}
                     for i, r in enumerate(rows[start:start + 2000], start=start)]
            await self.session.execute(insert(DocumentRow), chunk)
        return version

    async def retire(self, base: DocumentVersion, at: int, key: str, values: Collection[str]) -> int:
        """Retire from version `at` on the rows of `base` whose extra column `key` is one of `values`; how many."""
        if not values:
            return 0
        stmt = (update(DocumentRow).where(in_version(base), DocumentRow.extra[key].as_string().in_(sorted(values)))
                .values(retired_in=at).execution_options(synchronize_session=False))
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def next_position(self, base: DocumentVersion) -> int:
        """The position after every row the versions `base` extends added (retired ones too: positions stay unique)."""
        last = await self.session.scalar(select(func.max(DocumentRow.position)).where(
            DocumentRow.version_id.in_(added_by(base))))
        return 0 if last is None else int(last) + 1

    async def has_row_with(self, document_id: uuid.UUID, key: str, value: str) -> bool:
        """Whether any version of the document has a row whose extra column `key` is `value`."""
        found = await self.session.scalar(
            select(DocumentRow.id).join(DocumentVersion, DocumentVersion.id == DocumentRow.version_id)
            .where(DocumentVersion.document_id == document_id, DocumentRow.extra[key].as_string() == value).limit(1))
        return found is not None

    async def documents_of(self, version_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        """The document of each version id."""
        rows = await self.session.execute(select(DocumentVersion.id, DocumentVersion.document_id)
                                          .where(DocumentVersion.id.in_(list(version_ids))))
        return {v: d for v, d in rows.tuples()}

    def rows_statement(self, versions: Sequence[DocumentVersion], *, labels: Sequence[str] | None = None,
                       has_annotation: bool | None = None, media_types: Sequence[str] | None = None,
                       min_size: int | None = None, max_size: int | None = None, q: str | None = None,
                       md5s: Sequence[str] | None = None) -> Select[DocumentRow, File]:
        stmt = (select(DocumentRow, File).join(DocumentVersion, DocumentVersion.id == DocumentRow.version_id)
                .outerjoin(File, File.md5 == DocumentRow.md5).where(or_(false(), *[in_version(v) for v in versions])))
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
        return stmt.order_by(DocumentVersion.document_id, DocumentRow.position)

    async def count_rows(self, stmt: Select[DocumentRow, File]) -> int:
        return await self.count(stmt.with_only_columns(DocumentRow.id))

    async def rows(self, stmt: Select[DocumentRow, File], *, limit: int | None = None,
                   offset: int = 0) -> list[tuple[DocumentRow, File | None]]:
        """The rows with their files (None for a table row: the file is outer-joined)."""
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        return [(r, f) for r, f in (await self.session.execute(stmt)).tuples()]

    async def current_versions(self, document_ids: Sequence[uuid.UUID] | None) -> list[tuple[Document, DocumentVersion]]:
        stmt = select(Document, DocumentVersion).join(DocumentVersion, (DocumentVersion.document_id == Document.id)
                                                      & (DocumentVersion.version == Document.current_version))
        if document_ids:
            stmt = stmt.where(Document.id.in_(document_ids))
        return [(d, v) for d, v in (await self.session.execute(stmt)).tuples()]
