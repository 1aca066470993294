from sqlalchemy.ext.asyncio import AsyncSession

from bam.config import Settings
from bam.outcome.service import apply_testing_completed
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import TestingCompleted


async def on_testing_completed(event: Envelope[TestingCompleted], session: AsyncSession,
                               ctx: ServiceContext[Settings]) -> None:
    await apply_testing_completed(session, ctx.settings, ctx.store, event)
