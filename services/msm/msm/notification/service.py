"""Outbound webhooks on MSM's own events. `NotificationService.emit()` is how MSM sends an event: the outbox
row and one delivery row per matching subscription are written in the caller's transaction, so a rolled-back
change notifies nobody and a committed one is delivered even across restarts (the dispatcher retries)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import new_id, utcnow
from mlife_shared.errors import NotFound
from mlife_shared.events import Envelope, EventData
from mlife_shared.messaging import outbox
from mlife_shared.outbound import check_url
from msm.config import Settings
from msm.notification.models import WebhookDelivery, WebhookSubscription
from msm.notification.repository import WebhookRepository

ALLOW_SETTING = "MLIFE_MSM_WEBHOOK_ALLOW_HOSTS"
SUBJECTS = ("model.registered", "model.alias_moved", "model.promoted", "testing.requested", "deployment.requested",
            "deployment.succeeded", "deployment.failed", "deployment.rolled_back", "deployment.blocked",
            "serving.feedback")


class NotificationService:
    """How MSM sends its events. `emit()`: an event on the bus (the outbox row) and to the webhooks;
    `notify()`: an event for the webhooks only (no consumer needs it on the bus)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = WebhookRepository(session)

    async def emit(self, data: EventData, *, correlation_id: uuid.UUID | None = None,
                   causation_id: uuid.UUID | None = None) -> Envelope[EventData]:
        envelope = await outbox.add(self.session, data, correlation_id=correlation_id, causation_id=causation_id)
        await self._fan_out(envelope.id, envelope.type, envelope.model_dump_json())
        return envelope

    async def notify(self, subject: str, data: dict[str, Any]) -> None:
        """A webhook-only event in the envelope's shape (`id`, `type`, `source`, `time`, `data`)."""
        event_id = new_id()
        body = {"id": str(event_id), "type": subject, "source": "msm", "time": utcnow().isoformat(), "data": data}
        await self._fan_out(event_id, subject, json.dumps(body))

    async def _fan_out(self, event_id: uuid.UUID, subject: str, body: str) -> int:
        """One pending delivery per active subscription to `subject`."""
        count = 0
        for sub in await self.repo.active():
            if subject in sub.events or "*" in sub.events:
                await self.repo.add(WebhookDelivery(subscription_id=sub.id, event_id=event_id, subject=subject,
                                                    body=body, status="pending", attempts=0,
                                                    next_attempt_at=utcnow(), log=[]))
                count += 1
        return count


def sign(secret: str, delivery_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (the Standard Webhooks scheme)."""
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def backoff(settings: Settings, attempts: int) -> timedelta:
    steps = settings.webhook_backoff_seconds or [1.0]
    return timedelta(seconds=steps[min(attempts - 1, len(steps) - 1)])


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.repo = WebhookRepository(session)
        self.settings = settings

    async def create(self, url: str, events: list[str], secret: str | None, description: str,
                     actor: str) -> WebhookSubscription:
        await check_url(url, self.settings.webhook_allow_hosts, what="url", setting=ALLOW_SETTING)
        sub = WebhookSubscription(url=url, events=sorted(set(events)), secret=secret or secrets.token_urlsafe(32),
                                  active=True, description=description, created_by=actor)
        await self.repo.add(sub)
        return sub

    async def get(self, subscription_id: uuid.UUID) -> WebhookSubscription:
        sub = await self.repo.subscription(subscription_id)
        if sub is None:
            raise NotFound(f"no webhook subscription {subscription_id}")
        return sub

    async def subscriptions(self) -> Sequence[WebhookSubscription]:
        return await self.repo.subscriptions()

    async def deliveries(self, subscription_id: uuid.UUID, limit: int) -> Sequence[WebhookDelivery]:
        """The delivery log of a subscription (which must exist), newest first."""
        await self.get(subscription_id)
        return await self.repo.deliveries(subscription_id, limit)

    async def update(self, subscription_id: uuid.UUID, changes: dict[str, Any]) -> WebhookSubscription:
        sub = await self.get(subscription_id)
        if "url" in changes:
            await check_url(changes["url"], self.settings.webhook_allow_hosts, what="url", setting=ALLOW_SETTING)
        for key, value in changes.items():
            setattr(sub, key, sorted(set(value)) if key == "events" else value)
        await self.session.flush()
        return sub

    async def delete(self, subscription_id: uuid.UUID) -> None:
        await self.repo.delete(await self.get(subscription_id))
