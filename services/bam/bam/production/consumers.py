from sqlalchemy.ext.asyncio import AsyncSession

from bam.config import Settings
from bam.production.service import ProductionService
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ModelPromoted


async def on_model_promoted(event: Envelope[ModelPromoted], session: AsyncSession,
                            ctx: ServiceContext[Settings]) -> None:
    await ProductionService(session, ctx.settings).promote(event)
