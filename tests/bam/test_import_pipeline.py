"""The import's pipeline, on real PostgreSQL: a chunk is planned while the previous one is written, so a row that
merges into a badcase of the previous (not yet written) chunk is merged from that chunk's plan. Small chunks make
every row cross a chunk boundary; the stored result must be the one a single chunk gives. A badcase created by a
concurrent report between a chunk's lookup and its write is merged into, not duplicated."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import sqlalchemy as sa

from bam.badcase.schemas import BadcaseCreate
from bam.badcase.service import BadcaseService, ReportContext
from bam.config import Settings
from bam.importing.parser import Limits, read_rows
from bam.importing.repository import ExistingBadcase
from bam.importing.schemas import ImportResult
from bam.importing.service import ImportService
from mlife_shared.db import Database
from tests.support.auth import SECRET

SETTINGS = Settings(environment="test", identity_secret=SECRET, function_weights={"emotion": 2.0})


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` reports of 12 distinct badcases in random order, with tags that grow as they repeat."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = rng.randrange(12)
        out.append({"function": "emotion" if key % 2 else "gaze", "ground_truth": f"label-{key}",
                    "prediction": "happy", "description": f"row {i}", "severity": rng.choice(["low", "high"]),
                    "tags": [f"t{rng.randrange(4)}"], "data": [{"kind": "md5", "value": f"{key:032x}"}]})
    return out


async def body(reports: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for r in reports:
        yield (json.dumps(r) + "\n").encode()


async def run_import(db: Database, reports: list[dict[str, Any]], *, chunk_rows: int,
                     service: Callable[..., ImportService] = ImportService) -> ImportResult:
    async with db.transaction() as session:
        importer = service(session, SETTINGS, chunk_rows=chunk_rows)
        return await importer.run(read_rows(body(reports), "jsonl", Limits(max_bytes=SETTINGS.max_import_bytes)), reporter="tess")


async def stored(db: Database) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        badcases = (await session.execute(sa.text(
            "SELECT b.fingerprint, b.frequency, b.tags::jsonb::text, b.priority, b.priority_score, b.search_text, "
            "(SELECT count(*) FROM occurrence o WHERE o.badcase_id = b.id), "
            "(SELECT array_agg(t.tag ORDER BY t.tag) FROM badcase_tag t WHERE t.badcase_id = b.id) "
            "FROM badcase b ORDER BY b.fingerprint"))).all()
        events = (await session.execute(sa.text(
            "SELECT subject, count(*) FROM outbox GROUP BY subject ORDER BY subject"))).all()
    return [tuple(r) for r in badcases] + [tuple(e) for e in events]


async def test_small_chunks_store_what_one_chunk_stores(make_database: Callable[[str], Awaitable[str]]) -> None:
    reports = rows(60, seed=7)
    results = {}
    for chunk_rows in (1000, 1, 3, 7):
        db = Database(await make_database("bam.migrations"))
        try:
            # a badcase stored before the import: rows of every chunk merge into it
            async with db.transaction() as session:
                await BadcaseService(session, SETTINGS).record(BadcaseCreate.model_validate(reports[0]),
                                                                ReportContext(reporter="tess", source="manual"))
            result = await run_import(db, reports, chunk_rows=chunk_rows)
            assert (result.rows, result.failed, result.created + result.merged) == (60, 0, 60), result
            results[chunk_rows] = (result.created, result.merged, await stored(db))
        finally:
            await db.dispose()
    reference = results[1000]
    assert reference[0] == 11 and sum(r[1] for r in reference[2][:12]) == 61  # 12 badcases, one stored before
    for chunk_rows, outcome in results.items():
        assert outcome == reference, f"chunks of {chunk_rows} rows stored another result"


async def test_a_badcase_created_concurrently_before_a_chunk_is_written_is_merged_into(
        make_database: Callable[[str], Awaitable[str]]) -> None:
    db = Database(await make_database("bam.migrations"))
    reports = [{"function": "emotion", "ground_truth": f"label-{k}", "prediction": "happy",
                "data": [{"kind": "md5", "value": f"{k:032x}"}], "tags": [f"t{k}"]} for k in (1, 2, 3, 4, 1, 5)]
    concurrent: list[uuid.UUID] = []

    class Racing(ImportService):
        """Chunks of 2 rows. Chunk 2's lookup runs before chunk 1 is written: at that moment another request
        records label-2 (a new badcase of chunk 1) and commits, so chunk 1's write meets a duplicate key."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            lookup = self.repo.lock_by_fingerprint
            calls = [0]

            async def racing(fingerprints: Collection[str]) -> dict[str, ExistingBadcase]:
                calls[0] += 1
                if calls[0] == 2:
                    other = Database(db.url)
                    try:
                        async with other.transaction() as session:
                            recorded = await BadcaseService(session, SETTINGS).record(
                                BadcaseCreate.model_validate(reports[1]), ReportContext(reporter="ann", source="manual"))
                            concurrent.append(recorded.badcase.id)
                    finally:
                        await other.dispose()
                return await lookup(fingerprints)

            self.repo.lock_by_fingerprint = racing  # type: ignore[method-assign]

    try:
        result = await run_import(db, reports, chunk_rows=2, service=Racing)
        assert (result.created, result.merged, result.failed) == (4, 2, 0), result
        async with db.transaction() as session:
            found = (await session.execute(sa.text(
                "SELECT ground_truth #>> '{}', frequency, id FROM badcase ORDER BY 1"))).all()
            subjects: dict[str, int] = dict((await session.execute(sa.text(
                "SELECT subject, count(*) FROM outbox GROUP BY subject"))).all())
        assert [(g, f) for g, f, _ in found] == [("label-1", 2), ("label-2", 2), ("label-3", 1), ("label-4", 1),
                                                 ("label-5", 1)]
        assert concurrent and found[1][2] == concurrent[0], "label-2 was not merged into the concurrent badcase"
        assert subjects == {"badcase.created": 5, "badcase.merged": 2}  # 1 by the concurrent report
    finally:
        await db.dispose()
