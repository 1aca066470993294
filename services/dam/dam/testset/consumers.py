from sqlalchemy.ext.asyncio import AsyncSession

from dam.testset.service import TestSetService
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested


async def on_test_data_requested(event: Envelope[BadcaseTestDataRequested], session: AsyncSession,
                                 ctx: ServiceContext) -> None:
    max_bytes = getattr(ctx.settings, "max_upload_bytes", 2 * 1024 ** 3)
    await TestSetService(session, ctx.store, ctx.scoped, max_bytes=max_bytes).append(event)
