"""Every query of a bulk import, a chunk of rows at a time: one SELECT for the chunk's fingerprints, then the new
rows (badcases, tags, occurrences) and the merges. On PostgreSQL the new rows are COPYed (asyncpg
`copy_records_to_table` on the session's own connection, so in the request's transaction and savepoint), each value
converted by its column type's bind processor exactly as an INSERT would send it; elsewhere (SQLite) they are
executemany INSERTs. Merges are executemany UPDATEs (SQLAlchemy Core, so no ORM objects are built for the rows)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY

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
        # PostgreSQL: one array parameter (`= ANY($1)`), not one parameter per fingerprint of the chunk.
        wanted = (Badcase.fingerprint == any_(bindparam("fingerprints", sorted(fingerprints), type_=ARRAY(String)))
                  if self.is_postgresql else Badcase.fingerprint.in_(fingerprints))
        stmt = self.lock(select(Badcase.fingerprint, Badcase.id, Badcase.function, Badcase.severity,
                                Badcase.priority_override, Badcase.description_norm, Badcase.tags, Badcase.frequency)
                         .where(wanted).order_by(Badcase.fingerprint))
        rows = (await self.session.execute(stmt)).all()
        return {r[0]: ExistingBadcase(*r[1:]) for r in rows}

    async def add_badcases(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._insert_many(BADCASE, rows)

    async def add_tags(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._insert_many(BADCASE_TAG, rows)

    async def add_occurrences(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._insert_many(OCCURRENCE, rows)

    async def update_merged(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of `merged_id` and the MERGED_COLUMNS."""
        stmt = (update(BADCASE).where(BADCASE.c.id == bindparam("merged_id"))
                .values({name: bindparam(f"new_{name}") for name in MERGED_COLUMNS}))
        await self._many(stmt, [{"merged_id": r["merged_id"], **{f"new_{n}": r[n] for n in MERGED_COLUMNS}}
                                for r in rows])

    async def _many(self, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(stmt, list(rows))

    async def _insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """COPY on PostgreSQL, executemany INSERTs elsewhere (`Repository.copy_insert`). A duplicate key is
        IntegrityError either way (the import plans again, merging into the row a concurrent report created)."""
        await self.copy_insert(table, rows)
