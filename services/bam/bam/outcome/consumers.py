from sqlalchemy.ext.asyncio import AsyncSession

from bam.config import Settings
from bam.outcome.service import OutcomeService
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import TestingCompleted


async def on_testing_completed(event: Envelope[TestingCompleted], session: AsyncSession,
                               ctx: ServiceContext[Settings]) -> None:
    await OutcomeService(session, ctx.settings).apply_testing_completed(ctx.store, event)
