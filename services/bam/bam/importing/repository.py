"""Every query of a bulk import, a chunk of rows at a time: one SELECT for the chunk's fingerprints, then
executemany INSERTs and UPDATEs (SQLAlchemy Core, so no ORM objects are built for the rows)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from bam.badcase.models import Badcase, BadcaseTag, Occurrence
from bam.badcase.repository import BADCASE
from mlife_shared.db import cast_table
from mlife_shared.repository import Repository

BADCASE_TAG = cast_table(BadcaseTag)
OCCURRENCE = cast_table(Occurrence)
MERGED_COLUMNS = ("frequency", "last_seen", "updated_at", "tags", "search_text", "priority_score", "priority")


@dataclass
class ExistingBadcase:
    """What merging a report into a stored badcase needs to know about it."""

    id: uuid.UUID
    function: str
    severity: str
    priority_override: float | None
    description_norm: str
    tags: list[str]
    frequency: int


class ImportRepository(Repository):
    async def lock_by_fingerprint(self, fingerprints: Collection[str]) -> dict[str, ExistingBadcase]:
        """The stored badcases with these fingerprints, locked for the rest of the transaction (PostgreSQL),
        in fingerprint order so that two imports lock their common rows in the same order."""
        stmt = self.lock(select(Badcase.fingerprint, Badcase.id, Badcase.function, Badcase.severity,
                                Badcase.priority_override, Badcase.description_norm, Badcase.tags, Badcase.frequency)
                         .where(Badcase.fingerprint.in_(fingerprints)).order_by(Badcase.fingerprint))
        rows = (await self.session.execute(stmt)).all()
        return {r[0]: ExistingBadcase(*r[1:]) for r in rows}

    async def add_badcases(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._many(insert(BADCASE), rows)

    async def add_tags(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._many(insert(BADCASE_TAG), rows)

    async def add_occurrences(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._many(insert(OCCURRENCE), rows)

    async def update_merged(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of `merged_id` and the MERGED_COLUMNS."""
        stmt = (update(BADCASE).where(BADCASE.c.id == bindparam("merged_id"))
                .values({name: bindparam(f"new_{name}") for name in MERGED_COLUMNS}))
        await self._many(stmt, [{"merged_id": r["merged_id"], **{f"new_{n}": r[n] for n in MERGED_COLUMNS}}
                                for r in rows])

    async def _many(self, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(stmt, list(rows))
