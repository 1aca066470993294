"""What a service wrote to its outbox (read straight from its database)."""

from __future__ import annotations

import json
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine


class HasDatabaseUrl(Protocol):
    database_url: str


async def outbox_events(db: str | HasDatabaseUrl, subject: str | None = None) -> list[dict[str, Any]]:
    """The envelopes in the outbox of the database `db` (a URL, or settings with a `database_url`), oldest
    first; only those of `subject` if given."""
    url = db if isinstance(db, str) else db.database_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT subject, envelope FROM outbox ORDER BY seq"))).all()
    finally:
        await engine.dispose()
    return [env if isinstance(env, dict) else json.loads(env) for subj, env in rows if subject in (None, subj)]
