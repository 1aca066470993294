"""Webhooks: who receives which public events. The hub (gateway.hub) queues one delivery per matching
active webhook for every public event the gateway's worker consumes; the dispatcher sends them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.webhooks.exceptions import UnknownSubjects, WebhookNotFound
from gateway.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from gateway.webhooks.repository import WebhookRepository
from gateway.webhooks.schemas import WebhookCreate
from gateway.webhooks.signing import new_secret
from mlife_shared.db import new_id, utcnow
from mlife_shared.events import registry
from mlife_shared.events.asyncapi import example_of, public_events
from mlife_shared.events.registry import stream_name, subject_matches
from mlife_shared.outbound import check_url
from mlife_shared.repository import Page

ALLOW_SETTING = "MLIFE_GATEWAY_WEBHOOK_ALLOW_HOSTS"


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """The patterns, sorted and unique, each a NATS pattern matching at least one public subject."""
    subjects = list(public_events())
    for pattern in patterns:
        tokens = pattern.split(".")
        if not pattern or any(not t or (t == ">" and i != len(tokens) - 1) or (len(t) > 1 and ("*" in t or ">" in t))
                              for i, t in enumerate(tokens)):
            raise UnknownSubjects(f"{pattern!r} is no NATS subject pattern (tokens separated by '.', '*' one "
                                  f"token, '>' the rest at the end)")
        if not any(subject_matches(pattern, s) for s in subjects):
            raise UnknownSubjects(f"{pattern!r} matches no public event; the subjects are {subjects}")
    return sorted(set(patterns))


def check_versions(versions: dict[str, int]) -> dict[str, int]:
    """Pins of public subjects to a version of their contract the registry still serves."""
    for subject, version in versions.items():
        if subject not in public_events():
            raise UnknownSubjects(f"versions: {subject!r} is no public event; the subjects are {list(public_events())}")
        if version not in registry.versions(subject):
            raise UnknownSubjects(f"versions: {subject} has no version {version} served; the versions served are "
                                  f"{registry.versions(subject)}")
    return dict(sorted(versions.items()))


def as_pinned(webhook: Webhook, subject: str, body: str) -> str:
    """The event's body in the version the webhook pinned its subject to (downgraded by the registry), or as it
    is: no pin, the event is not newer, or the pinned version reached its sunset (then the latest is sent)."""
    pinned = (webhook.versions or {}).get(subject)
    if pinned is None:
        return body
    raw = json.loads(body)
    version = int(raw.get("version", 1))
    if pinned >= version:
        return body
    try:
        raw["data"] = registry.downgrade(subject, raw["data"], version, pinned)
    except registry.UnknownVersion:
        return body
    raw["version"] = pinned
    return json.dumps(raw)


def matches(webhook: Webhook, subject: str, function: str | None) -> bool:
    """`subject` is one the webhook asked for, and its function one it filters on (when it filters)."""
    if not any(subject_matches(p, subject) for p in webhook.subjects):
        return False
    return not webhook.functions or function in webhook.functions


def event_function(data: Any) -> str | None:
    function = data.get("function") if isinstance(data, dict) else getattr(data, "function", None)
    return function if isinstance(function, str) else None


def has_function(subject: str) -> bool:
    return "function" in public_events()[subject].model_fields


def subject_stream(subject: str) -> str:
    return stream_name(public_events()[subject].producer)


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = WebhookRepository(session)

    async def _check_url(self, url: str) -> None:
        await check_url(url, self.settings.webhook_allow_hosts, what="url", setting=ALLOW_SETTING)

    async def create(self, body: WebhookCreate, actor: str) -> Webhook:
        await self._check_url(body.url)
        webhook = Webhook(url=body.url.strip(), description=body.description, subjects=check_patterns(body.subjects),
                          functions=sorted(set(body.filter.function)), versions=check_versions(body.versions),
                          active=True, secret=new_secret(),
                          created_by=actor)
        return await self.repo.add(webhook)

    async def get(self, webhook_id: uuid.UUID) -> Webhook:
        webhook = await self.repo.webhook(webhook_id)
        if webhook is None:
            raise WebhookNotFound(f"no webhook {webhook_id}")
        return webhook

    async def all(self) -> Sequence[Webhook]:
        return await self.repo.webhooks()

    async def update(self, webhook_id: uuid.UUID, changes: dict[str, Any]) -> Webhook:
        webhook = await self.get(webhook_id)
        if changes.get("url") is not None:
            await self._check_url(changes["url"])
            webhook.url = changes["url"].strip()
        if changes.get("subjects") is not None:
            webhook.subjects = check_patterns(changes["subjects"])
        if changes.get("filter") is not None:
            webhook.functions = sorted(set(changes["filter"].get("function") or []))
        if changes.get("versions") is not None:
            webhook.versions = check_versions(changes["versions"])
        if changes.get("description") is not None:
            webhook.description = changes["description"]
        if changes.get("active") is not None:
            webhook.active = changes["active"]
            webhook.disabled_reason = None if webhook.active else "paused"
        webhook.updated_at = utcnow()
        await self.session.flush()
        return webhook

    async def delete(self, webhook_id: uuid.UUID) -> None:
        await self.repo.delete(await self.get(webhook_id))

    async def rotate(self, webhook_id: uuid.UUID) -> Webhook:
        """A new secret; the old one keeps signing (beside it) for `webhook_secret_rotation_hours`."""
        webhook = await self.get(webhook_id)
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_until = utcnow() + timedelta(hours=self.settings.webhook_secret_rotation_hours)
        webhook.secret = new_secret()
        webhook.updated_at = utcnow()
        await self.session.flush()
        return webhook

    async def deliveries(self, webhook_id: uuid.UUID, *, limit: int,
                         offset: int) -> tuple[Page[WebhookDelivery], dict[uuid.UUID, list[WebhookAttempt]]]:
        """A page of the webhook's deliveries, newest first, and each one's attempts."""
        await self.get(webhook_id)
        page = await self.repo.deliveries(webhook_id, limit=limit, offset=offset)
        attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in page.items}
        for attempt in await self.repo.attempts(attempts):
            attempts[attempt.delivery_id].append(attempt)
        return page, attempts

    async def enqueue(self, webhook: Webhook, *, event_id: uuid.UUID, subject: str, body: str, test: bool = False,
                      replay_id: uuid.UUID | None = None) -> WebhookDelivery:
        first = timedelta(seconds=(self.settings.webhook_schedule_seconds or [0.0])[0])
        return await self.repo.add(WebhookDelivery(
            webhook_id=webhook.id, event_id=event_id, subject=subject, body=as_pinned(webhook, subject, body), test=test,
            replay_id=replay_id,
            status="pending", attempts=0, next_attempt_at=utcnow() + first))

    async def fan_out(self, *, event_id: uuid.UUID, subject: str, function: str | None, body: str,
                      replay_id: uuid.UUID | None = None, only: Webhook | None = None) -> int:
        """One pending delivery per active webhook (or `only` that one) the event matches."""
        webhooks = [only] if only is not None else await self.repo.active()
        count = 0
        for webhook in webhooks:
            if matches(webhook, subject, function):
                await self.enqueue(webhook, event_id=event_id, subject=subject, body=body, replay_id=replay_id)
                count += 1
        return count

    async def send_test(self, webhook_id: uuid.UUID, subject: str) -> WebhookDelivery:
        """The example event of `subject` (from its contract's schema), with a fresh id and `"test": true`."""
        webhook = await self.get(webhook_id)
        if subject not in public_events():
            raise UnknownSubjects(f"{subject!r} is no public event; the subjects are {list(public_events())}")
        event_id = new_id()
        body = {**example_of(public_events()[subject]), "id": str(event_id), "correlation_id": str(event_id),
                "time": utcnow().isoformat(), "test": True}
        return await self.enqueue(webhook, event_id=event_id, subject=subject, body=json.dumps(body), test=True)
