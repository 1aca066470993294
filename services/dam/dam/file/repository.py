from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select

from dam.file.models import File, FilePath
from mlife_shared.db import utcnow
from mlife_shared.repository import Repository


class FileRepository(Repository):
    async def many(self, md5s: Iterable[str]) -> dict[str, File]:
        keys = list(set(md5s))
        out: dict[str, File] = {}
        for start in range(0, len(keys), 5000):
            rows = await self.session.scalars(select(File).where(File.md5.in_(keys[start:start + 5000])))
            out.update({f.md5: f for f in rows})
        return out

    async def existing(self, md5s: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(md5s), 5000):
            found.update(await self.session.scalars(select(File.md5).where(File.md5.in_(md5s[start:start + 5000]))))
        return found

    async def insert_if_absent(self, values: dict[str, object]) -> File | None:
        """Insert the file row unless its MD5 is there; the row when this call inserted it. Two concurrent
        uploads of one content both reach here: the unique key makes exactly one of them the writer."""
        stmt = (self.insert(File).values(**values, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["md5"]).returning(File))
        return (await self.session.scalars(stmt)).one_or_none()

    async def set_path(self, path: str, md5: str) -> None:
        stmt = self.insert(FilePath).values(path=path, md5=md5, updated_at=utcnow())
        stmt = stmt.on_conflict_do_update(index_elements=["path"], set_={"md5": md5, "updated_at": utcnow()})
        await self.session.execute(stmt)

    async def resolve_paths(self, paths: Iterable[str]) -> dict[str, str]:
        keys = list(set(paths))
        out: dict[str, str] = {}
        for start in range(0, len(keys), 5000):
            rows = await self.session.execute(select(FilePath.path, FilePath.md5)
                                              .where(FilePath.path.in_(keys[start:start + 5000])))
            out.update({p: m for p, m in rows})
        return out

    async def find(self, *, media_type: str | None, min_size: int | None, max_size: int | None, limit: int,
                   offset: int) -> list[File]:
        stmt = select(File)
        if media_type:
            stmt = stmt.where(File.media_type == media_type)
        if min_size is not None:
            stmt = stmt.where(File.size >= min_size)
        if max_size is not None:
            stmt = stmt.where(File.size <= max_size)
        stmt = stmt.order_by(File.created_at.desc(), File.md5).limit(limit).offset(offset)
        return list(await self.session.scalars(stmt))

