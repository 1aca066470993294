import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.errors import MLifeError
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.messaging.outbox import caused_by
from msm.config import Settings
from msm.registry.repository import RegistryRepository
from msm.registry.service import RegistryService

log = structlog.get_logger(__name__)


async def on_model_uploaded(event: Envelope[ModelUploaded], session: AsyncSession,
                            ctx: ServiceContext[Settings]) -> None:
    """Register the uploaded artifact as a new version (once per training task)."""
    d = event.data
    if await RegistryRepository(session).version_by_task(d.task_id) is not None:
        return
    service = RegistryService(session, ctx.settings, ctx.scoped)
    fmt = d.format.lower()
    try:
        # A savepoint: a rejected upload must leave nothing behind, yet the event is still consumed.
        async with session.begin_nested():
            await service.import_key(d.model_name, d.object_key, ctx.store, source="mtt", actor="mtt",
                                     fmt="onnx" if fmt == "onnx" else fmt, task_id=d.task_id, metrics=d.metrics,
                                     function=d.function, test_dataset_ids=list(d.test_dataset_ids),
                                     lineage={"task_id": str(d.task_id), "uploaded_md5": d.md5},
                                     correlation=caused_by(event))
    except MLifeError as exc:
        # A pickle, garbage, or a key outside MLife's storage: refused, never retried, never executed.
        log.warning("model_upload_rejected", task_id=str(d.task_id), model=d.model_name, key=d.object_key,
                    error=str(exc.message))
