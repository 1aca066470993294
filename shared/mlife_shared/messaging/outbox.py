"""`outbox.add()`: the only way an event leaves a service. It becomes a row of the caller's transaction;
a rollback takes it back, a commit hands it to the relay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import is_postgres
from mlife_shared.events import Envelope, EventData, event_model, new_envelope
from mlife_shared.messaging.repository import NOTIFY_CHANNEL, OutboxRepository

__all__ = ["NOTIFY_CHANNEL", "add", "add_many", "caused_by"]


async def add(session: AsyncSession, data: EventData, *, correlation_id: uuid.UUID | None = None,
              causation_id: uuid.UUID | None = None) -> Envelope[EventData]:
    if event_model(data.subject) is not type(data):
        raise ValueError(f"{type(data).__name__} is not the registered contract of {data.subject}")
    envelope = new_envelope(data, correlation_id=correlation_id, causation_id=causation_id)
    # The first event of a PostgreSQL transaction also queues a NOTIFY, in the same statement: it is
    # delivered at commit only, so the relay wakes for committed rows and never for rolled-back ones.
    notify = is_postgres(session) and not session.info.get("outbox_notified")
    await OutboxRepository(session).add_event(envelope.id, envelope.type, envelope.model_dump_json(), notify=notify)
    if notify:
        session.info["outbox_notified"] = True
    return envelope


async def add_many(session: AsyncSession, events: Sequence[EventData], *, correlation_id: uuid.UUID | None = None,
                   causation_id: uuid.UUID | None = None) -> list[Envelope[EventData]]:
    """`add()` for a batch: one executemany for the rows (a bulk import writes thousands) and one wake-up."""
    envelopes = []
    for data in events:
        if event_model(data.subject) is not type(data):
            raise ValueError(f"{type(data).__name__} is not the registered contract of {data.subject}")
        envelopes.append(new_envelope(data, correlation_id=correlation_id, causation_id=causation_id))
    if not envelopes:
        return envelopes
    repo = OutboxRepository(session)
    await repo.add_many([(e.id, e.type, e.model_dump_json()) for e in envelopes])
    if is_postgres(session) and not session.info.get("outbox_notified"):
        await repo.notify()
        session.info["outbox_notified"] = True
    return envelopes


def caused_by(parent: Envelope[EventData]) -> dict[str, uuid.UUID | None]:
    """Keyword arguments for `add()` when an event is a consequence of another one."""
    return {"correlation_id": parent.correlation_id, "causation_id": parent.id}
