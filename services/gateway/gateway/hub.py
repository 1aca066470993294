"""The gateway's view of the bus: one durable consumer per stream of the public events (its own
MLIFE_GATEWAY stream included), every event handed to `on_event` exactly once (the inbox), which queues
the webhook deliveries it matches. Further uses of every public event (alert rules) join `on_event`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alerts.engine import AlertEngine
from gateway.config import Settings
from gateway.webhooks.dispatcher import dispatch_job
from gateway.webhooks.service import WebhookService, event_function
from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.asyncapi import public_events
from mlife_shared.events.registry import stream_name
from mlife_shared.jobs import Job
from mlife_shared.messaging.consumer import Handler, Subscription


def public_streams() -> list[str]:
    return sorted({stream_name(model.producer) for model in public_events().values()})


def event_handler(settings: Settings) -> Handler:
    async def on_event(event: Envelope[Any], session: AsyncSession) -> None:
        if event.type not in public_events():
            return
        await WebhookService(session, settings).fan_out(
            event_id=event.id, subject=event.type, function=event_function(event.data), body=event.model_dump_json())
        await AlertEngine().on_event(event, session)  # alert rules (gateway/alerts/engine.py)

    return on_event


def subscriptions(ctx: ServiceContext[Settings]) -> list[Subscription]:
    handler = event_handler(ctx.settings)
    return [Subscription.of_stream(stream, handler, name=f"hub-{stream.lower().replace('_', '-')}")
            for stream in public_streams()]


def jobs(ctx: ServiceContext[Settings]) -> list[Job]:
    return [dispatch_job(ctx.settings)]
