from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bam.production.models import ProductionVersion


class ProductionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.bind.dialect.name

    async def lock(self, function: str) -> ProductionVersion:
        """The function's row, created empty if absent, locked for the rest of the transaction (PostgreSQL):
        a promotion and a testing result of one function wait for each other, so neither misses the other's
        outcomes or version."""
        # Sessions do not autoflush: a change made to the row earlier in this transaction (a batch of events)
        # is written first, or the re-read below would overwrite it.
        await self.session.flush()
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        await self.session.execute(insert(ProductionVersion).values(function=function)
                                   .on_conflict_do_nothing(index_elements=["function"]))
        stmt = select(ProductionVersion).where(ProductionVersion.function == function)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        # populate_existing: the row may be in the session from before the lock; read what is there now.
        return (await self.session.scalars(stmt.execution_options(populate_existing=True))).one()

    async def get(self, function: str) -> ProductionVersion | None:
        return await self.session.get(ProductionVersion, function)

    async def all(self) -> Sequence[ProductionVersion]:
        stmt = (select(ProductionVersion).where(ProductionVersion.model_name.is_not(None))
                .order_by(ProductionVersion.function))
        return (await self.session.scalars(stmt)).all()
