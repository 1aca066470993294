from sqlalchemy.ext.asyncio import AsyncSession

from bam.outcome.service import apply_testing_completed
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import TestingCompleted


async def on_testing_completed(event: Envelope[TestingCompleted], session: AsyncSession,
                               ctx: ServiceContext) -> None:
    await apply_testing_completed(session, ctx.settings, ctx.store, event)  # type: ignore[arg-type]
