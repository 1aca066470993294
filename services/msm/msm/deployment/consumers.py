from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DeploymentRequested
from mlife_shared.messaging.outbox import caused_by
from msm.config import Settings
from msm.deployment.deployer import Deployer


async def on_deployment_requested(event: Envelope[DeploymentRequested], session: AsyncSession,
                                  ctx: ServiceContext[Settings]) -> None:
    """Bring the deployment up (the deployer; a no-op when it is no longer `requested`)."""
    await Deployer(session, ctx).deploy(event.data.deployment_id, caused_by(event))
