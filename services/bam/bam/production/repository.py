from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from bam.production.models import ProductionVersion
from mlife_shared.repository import Repository


class ProductionRepository(Repository):
    async def lock_function(self, function: str) -> ProductionVersion:
        """The function's row, created empty if absent, locked for the rest of the transaction (PostgreSQL):
        a promotion and a testing result of one function wait for each other, so neither misses the other's
        outcomes or version."""
        # Sessions do not autoflush: a change made to the row earlier in this transaction (a batch of events)
        # is written first, or the re-read below would overwrite it.
        await self.session.flush()
        await self.session.execute(self.insert(ProductionVersion).values(function=function)
                                   .on_conflict_do_nothing(index_elements=["function"]))
        # populate_existing on both dialects: the row may be in the session from before the lock (an earlier
        # transaction of this session, on SQLite too); read what is there now.
        stmt = self.lock(select(ProductionVersion).where(ProductionVersion.function == function))
        row: ProductionVersion = (await self.session.scalars(stmt.execution_options(populate_existing=True))).one()
        return row

    async def promoted(self) -> Sequence[ProductionVersion]:
        """Every function's production version (functions never promoted left out)."""
        stmt = (select(ProductionVersion).where(ProductionVersion.model_name.is_not(None))
                .order_by(ProductionVersion.function))
        rows: Sequence[ProductionVersion] = await self.all(stmt)
        return rows
