"""`outbox.add()`: the only way an event leaves a service. It becomes a row of the caller's transaction;
a rollback takes it back, a commit hands it to the relay."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.events import Envelope, EventData, event_model, new_envelope
from mlife_shared.messaging.models import OutboxEvent

NOTIFY_CHANNEL = "mlife_outbox"


async def add(session: AsyncSession, data: EventData, *, correlation_id: uuid.UUID | None = None,
              causation_id: uuid.UUID | None = None) -> Envelope[EventData]:
    if event_model(data.subject) is not type(data):
        raise ValueError(f"{type(data).__name__} is not the registered contract of {data.subject}")
    envelope = new_envelope(data, correlation_id=correlation_id, causation_id=causation_id)
    session.add(OutboxEvent(id=envelope.id, subject=envelope.type, envelope=envelope.model_dump(mode="json")))
    if session.bind.dialect.name == "postgresql" and not session.info.get("outbox_notified"):
        # Delivered at commit only, so the relay wakes for committed rows and never for rolled-back ones.
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        session.info["outbox_notified"] = True
    return envelope


def caused_by(parent: Envelope[EventData]) -> dict[str, uuid.UUID | None]:
    """Keyword arguments for `add()` when an event is a consequence of another one."""
    return {"correlation_id": parent.correlation_id, "causation_id": parent.id}
