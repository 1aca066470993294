from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import TestingCompleted
from msm.testing.service import apply_testing_completed


async def on_testing_completed(event: Envelope[TestingCompleted], session: AsyncSession,
                               ctx: ServiceContext) -> None:
    await apply_testing_completed(session, ctx.store, event)
