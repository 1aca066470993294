"""`outbox.add()`: the only way an event leaves a service. It becomes a row of the caller's transaction;
a rollback takes it back, a commit hands it to the relay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import is_postgres
from mlife_shared.events import Envelope, EventData, event_model, new_envelope
from mlife_shared.messaging.relay import HOT_SECONDS
from mlife_shared.messaging.repository import NOTIFY_CHANNEL, OutboxRepository

__all__ = ["NOTIFY_CHANNEL", "NOTIFY_EVERY", "add", "add_many", "caused_by"]

# A NOTIFY serialises commits in PostgreSQL (its queue lock is held from pre-commit to the end of the commit):
# with one per transaction, flat-out commits fell to a third. So a process sends at most one per NOTIFY_EVERY:
# the relay that publishes the notified row keeps polling for HOT_SECONDS after it (relay.py), which covers a
# later commit of this process as long as add() -> commit takes less than HOT_SECONDS - NOTIFY_EVERY. Anything
# else (a longer transaction, a rolled-back notifying one) waits for the relay's poll, as without LISTEN.
NOTIFY_EVERY = HOT_SECONDS / 5
_last_notify: dict[str, float] = {}  # per database (its URL): a process may write to several


def _should_notify(session: AsyncSession) -> bool:
    if not is_postgres(session) or session.info.get("outbox_notified"):
        return False
    session.info["outbox_notified"] = True
    database, now = str(session.get_bind().engine.url), time.monotonic()
    if now - _last_notify.get(database, float("-inf")) < NOTIFY_EVERY:
        return False
    _last_notify[database] = now
    return True


async def add(session: AsyncSession, data: EventData, *, correlation_id: uuid.UUID | None = None,
              causation_id: uuid.UUID | None = None) -> Envelope[EventData]:
    if event_model(data.subject) is not type(data):
        raise ValueError(f"{type(data).__name__} is not the registered contract of {data.subject}")
    envelope = new_envelope(data, correlation_id=correlation_id, causation_id=causation_id)
    # The first event of a PostgreSQL transaction also queues a NOTIFY, in the same statement: it is
    # delivered at commit only, so the relay wakes for committed rows and never for rolled-back ones.
    notify = _should_notify(session)
    await OutboxRepository(session).add_event(envelope.id, envelope.type, envelope.model_dump_json(), notify=notify)
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
    if _should_notify(session):
        await repo.notify()
    return envelopes


def caused_by(parent: Envelope[EventData]) -> dict[str, uuid.UUID | None]:
    """Keyword arguments for `add()` when an event is a consequence of another one."""
    return {"correlation_id": parent.correlation_id, "causation_id": parent.id}
