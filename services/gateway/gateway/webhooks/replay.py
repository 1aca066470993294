"""Replay: the public events of the JetStream streams from a time (or one stream from a sequence) queued
again for one webhook, with their own event ids as `webhook-id` (receivers drop what they already have).
The streams are read with an ephemeral push consumer on the gateway's own inbox (no acks, in memory, gone
when idle), which the gateway's NATS user may create on the event streams and nothing else."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.events.schemas import ReplayRequest
from gateway.webhooks.models import WebhookReplay
from gateway.webhooks.service import WebhookService, event_function, matches, subject_stream
from mlife_shared.errors import ServiceUnavailable, Unprocessable
from mlife_shared.events.asyncapi import public_events
from mlife_shared.events.registry import subject_matches

WAIT_SECONDS = 10.0  # for the next message of a consumer that still has some pending


@dataclass(frozen=True)
class StoredEvent:
    subject: str
    event_id: uuid.UUID
    function: str | None
    body: str


def _parse(subject: str, raw: bytes) -> StoredEvent | None:
    """The stored envelope, or None for a message that is none (it was dead-lettered when consumed)."""
    try:
        envelope: dict[str, Any] = json.loads(raw)
        return StoredEvent(subject, uuid.UUID(str(envelope["id"])), event_function(envelope.get("data")),
                           raw.decode())
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


async def read_stream(nc: NATS, stream: str, *, since: datetime | None, sequence: int | None,
                      limit: int) -> list[StoredEvent]:
    """At most `limit` events of `stream` from `since` (or from `sequence`), in stream order."""
    js = nc.jetstream()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        config = ConsumerConfig(deliver_subject=inbox, ack_policy=AckPolicy.NONE, mem_storage=True,
                                inactive_threshold=30.0, num_replicas=1,
                                deliver_policy=DeliverPolicy.BY_START_TIME if since else DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_time=since, opt_start_seq=sequence)
        info = await js.add_consumer(stream, config)
        pending = min(int(info.num_pending or 0), limit)
        events: list[StoredEvent] = []
        for _ in range(pending):
            msg = await sub.next_msg(timeout=WAIT_SECONDS)
            if (event := _parse(msg.subject, msg.data)) is not None:
                events.append(event)
        return events
    finally:
        await sub.unsubscribe()


class ReplayService:
    def __init__(self, session: AsyncSession, settings: Settings, nc: NATS | None) -> None:
        self.session = session
        self.settings = settings
        self.nc = nc
        self.webhooks = WebhookService(session, settings)

    def _streams(self, subjects: list[str], request: ReplayRequest) -> list[str]:
        wanted = sorted({subject_stream(s) for s in public_events() if any(subject_matches(p, s) for p in subjects)})
        if request.stream is None:
            return wanted
        known = sorted({subject_stream(s) for s in public_events()})
        if request.stream not in known:
            raise Unprocessable(f"{request.stream!r} is no event stream; the streams are {known}")
        return [request.stream]

    async def replay(self, webhook_id: uuid.UUID, request: ReplayRequest, actor: str) -> WebhookReplay:
        webhook = await self.webhooks.get(webhook_id)
        if self.nc is None or not self.nc.is_connected:
            raise ServiceUnavailable("the gateway is not connected to NATS; try again shortly")
        events: list[StoredEvent] = []
        for stream in self._streams(webhook.subjects, request):
            room = self.settings.webhook_replay_max_events - len(events)
            try:
                events += await read_stream(self.nc, stream, since=request.since, sequence=request.sequence,
                                            limit=room) if room > 0 else []
            except NotFoundError:
                continue  # a stream no event was ever published to does not exist yet
            except NatsTimeoutError as exc:
                raise ServiceUnavailable(f"reading {stream} timed out; try again") from exc
        record = WebhookReplay(webhook_id=webhook.id, requested_by=actor, since=request.since,
                               stream=request.stream, sequence=request.sequence, events_read=len(events))
        record.id = uuid.uuid4()
        queued = 0
        for event in events:
            if matches(webhook, event.subject, event.function):
                await self.webhooks.enqueue(webhook, event_id=event.event_id, subject=event.subject, body=event.body,
                                            replay_id=record.id)
                queued += 1
        record.deliveries = queued
        await self.webhooks.repo.add(record)
        return record

    async def history(self, webhook_id: uuid.UUID, limit: int = 100) -> list[WebhookReplay]:
        await self.webhooks.get(webhook_id)
        return list(await self.webhooks.repo.replays(webhook_id, limit))
