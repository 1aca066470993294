from __future__ import annotations

from typing import Any

from dam.testset.models import TestDataConversion
from mlife_shared.db import utcnow
from mlife_shared.repository import Repository


class ConversionRepository(Repository):
    async def by_function(self, function: str) -> TestDataConversion | None:
        return await self.get(TestDataConversion, function)

    async def put(self, function: str, settings: dict[str, Any], user: str | None) -> TestDataConversion:
        values = {"settings": settings, "updated_by": user, "updated_at": utcnow()}
        stmt = (self.insert(TestDataConversion).values(function=function, **values)
                .on_conflict_do_update(index_elements=["function"], set_=values).returning(TestDataConversion))
        row: TestDataConversion = (await self.session.scalars(
            stmt, execution_options={"populate_existing": True})).one()
        return row
