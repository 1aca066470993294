"""What a migrated database costs a test: the old way (CREATE DATABASE + Alembic) against a clone of the
session's template. A measurement, not a test:

    MLIFE_TESTENV_FORCE_OWN=pg,nats .venv/bin/python scripts/testenv.py -- \\
        .venv/bin/python -m tests.support.time_databases [N]
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from mlife_shared.migrations import upgrade
from tests.support import postgres

SERVICES = ("bam", "dam", "mtt", "msm", "gateway")


async def _migrated_the_old_way(migrations: str) -> str:
    name = f"mlife_test_{uuid.uuid4().hex[:12]}"
    conn = await postgres._admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, migrations, postgres.pg_url(name))
    return name


async def main(n: int) -> None:
    try:
        for service in SERVICES:
            migrations, made = f"{service}.migrations", []
            t = time.perf_counter()
            for _ in range(n):
                made.append(await _migrated_the_old_way(migrations))
            old = (time.perf_counter() - t) / n
            t = time.perf_counter()
            await postgres.template(migrations)
            once = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(n):
                made.append(await postgres.create_database(migrations))
            clone = (time.perf_counter() - t) / n
            await postgres.drop_databases(made)
            print(f"{service:8s} migrated: {old * 1000:5.0f} ms/database   template: {once * 1000:5.0f} ms once   "
                  f"clone: {clone * 1000:4.0f} ms/database")
    finally:
        await postgres.drop_templates()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
