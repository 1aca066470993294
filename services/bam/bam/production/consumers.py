from sqlalchemy.ext.asyncio import AsyncSession

from bam.production.service import promote
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ModelPromoted


async def on_model_promoted(event: Envelope[ModelPromoted], session: AsyncSession, ctx: ServiceContext) -> None:
    await promote(session, ctx.settings, event)  # type: ignore[arg-type]
