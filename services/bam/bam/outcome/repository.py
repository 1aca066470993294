from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.models import Outcome


class OutcomeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, outcome: Outcome) -> None:
        self.session.add(outcome)

    async def for_badcase(self, badcase_id: uuid.UUID, limit: int = 500) -> Sequence[Outcome]:
        stmt = (select(Outcome).where(Outcome.badcase_id == badcase_id)
                .order_by(Outcome.recorded_at.desc(), Outcome.id).limit(limit))
        return (await self.session.scalars(stmt)).all()
