"""Priority re-scoring: recency decays while nobody touches a badcase, and function weights change with
the configuration, so BAM's worker re-scores every badcase periodically (`MLIFE_BAM_RESCORE_INTERVAL_SECONDS`,
default one hour), a chunk of rows at a time in id order. A row is written only when its score moved by more
than 0.5 %, so a run over a quiet database writes little. A manual priority stays in force (only
`priority_score` moves). No event is sent: the score is derived data, not a triage decision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase import priority
from bam.badcase.repository import BadcaseRepository
from bam.config import Settings
from mlife_shared.db import utcnow

CHUNK = 5000
TOLERANCE = 0.005


async def rescore_all(session: AsyncSession, settings: Settings, now: datetime | None = None) -> int:
    """Re-score every badcase; returns how many rows changed."""
    now = now or utcnow()
    repo = BadcaseRepository(session)
    changed, after = 0, None
    while True:
        rows = await repo.scoring_chunk(after, CHUNK)
        if not rows:
            return changed
        updates = []
        for r in rows:
            new = priority.score(frequency=r.frequency, severity=r.severity, last_seen=r.last_seen, now=now,
                                 function_weight=settings.function_weights.get(r.function, 1.0),
                                 half_life_days=settings.priority_half_life_days)
            if abs(new - r.priority_score) > TOLERANCE * max(abs(r.priority_score), 1e-6):
                updates.append({"rid": r.id, "score": new,
                                "effective": r.priority_override if r.priority_override is not None else new})
        await repo.set_scores(updates)
        changed += len(updates)
        after = rows[-1].id
