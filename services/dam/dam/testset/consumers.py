from sqlalchemy.ext.asyncio import AsyncSession

from dam.config import Settings
from dam.testset.service import TestSetService
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested


async def on_test_data_requested(event: Envelope[BadcaseTestDataRequested], session: AsyncSession,
                                 ctx: ServiceContext[Settings]) -> None:
    await TestSetService(session, ctx.store, ctx.scoped, max_bytes=ctx.settings.max_upload_bytes,
                         media_max_bytes=ctx.settings.media_max_bytes).append(event)
