from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.schemas import BadcaseCreate
from bam.badcase.service import BadcaseService, ReportContext, function_of
from bam.config import Settings
from bam.outcome.service import data_refs
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ServingFeedback
from mlife_shared.messaging.outbox import caused_by


async def on_serving_feedback(event: Envelope[ServingFeedback], session: AsyncSession,
                              ctx: ServiceContext[Settings]) -> None:
    d = event.data
    report = BadcaseCreate(function=function_of(d.function), model_name=d.model_name, model_version=d.model_version,
                           data=data_refs(d.input_ref), prediction=d.prediction, ground_truth=d.correct_label,
                           client_id=d.client_id, device_id=d.device_id, deployment_id=d.deployment_id,
                           model_version_id=d.model_version_id,
                           description=f"Flagged by a client of deployment {d.deployment_id}")
    await BadcaseService(session, ctx.settings).record(
        report, ReportContext(reporter="serving", source="serving", event_id=event.id, correlation=caused_by(event)))
