from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.messaging.outbox import caused_by
from msm.config import Settings
from msm.registry.service import RegistryService


async def on_model_uploaded(event: Envelope[ModelUploaded], session: AsyncSession,
                            ctx: ServiceContext[Settings]) -> None:
    """Register the uploaded artifact as a new version (once per training task)."""
    await RegistryService(session, ctx.settings, ctx.scoped).register_upload(event.data, ctx.store, caused_by(event))
