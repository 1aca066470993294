"""Sends pending deliveries: signed (Standard Webhooks), with a timeout, retried on the configured schedule,
every attempt logged. A due delivery is leased (its next attempt pushed `webhook_lease_seconds` ahead) in a
transaction that locks it with SKIP LOCKED, committed before anything is sent: two gateway workers never
send one delivery at the same time, and a worker that dies mid-send leaves it to be retried after the lease
(a receiver may then see it twice, with the same `webhook-id`, and drops the repeat)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Settings
from gateway.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from gateway.webhooks.repository import WebhookRepository
from gateway.webhooks.service import ALLOW_SETTING
from gateway.webhooks.signing import headers
from mlife_shared.db import utcnow
from mlife_shared.jobs import Job
from mlife_shared.outbound import OutboundError, UnsafeUrl, fetch

log = structlog.get_logger(__name__)
GONE = 410


@dataclass(frozen=True)
class Send:
    delivery_id: uuid.UUID
    url: str
    secrets: list[str]
    event_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    refused: bool = False


def live_secrets(webhook: Webhook) -> list[str]:
    """The current secret, and the previous one while its rotation window lasts."""
    previous = webhook.previous_secret if webhook.previous_secret_until and webhook.previous_secret_until > utcnow() \
        else None
    return [webhook.secret] + ([previous] if previous else [])


class WebhookDispatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def run_once(self, limit: int = 50) -> int:
        """Send every due delivery (at most `limit`) once; returns how many were attempted."""
        async with self._transaction() as session:
            lease = utcnow() + timedelta(seconds=self.settings.webhook_lease_seconds)
            sends = []
            for delivery, webhook in await WebhookRepository(session).claim_due(utcnow(), limit):
                delivery.next_attempt_at = lease
                sends.append(Send(delivery.id, webhook.url, live_secrets(webhook), str(delivery.event_id),
                                  delivery.body))
        outcomes = await asyncio.gather(*(self._send(s) for s in sends))
        async with self._transaction() as session:
            repo = WebhookRepository(session)
            # locked in id order, as deleting a webhook locks its deliveries (no deadlock between the two)
            for send, outcome in sorted(zip(sends, outcomes, strict=True), key=lambda pair: pair[0].delivery_id):
                if (sent := await repo.delivery_for_update(send.delivery_id)) is not None:
                    await self._record(repo, sent, outcome)
        return len(sends)

    async def drain(self, limit: int = 50) -> int:
        """run_once until fewer than `limit` were due: the worker's job (a backlog goes out in one tick)."""
        total = 0
        while (sent := await self.run_once(limit)) > 0:
            total += sent
            if sent < limit:
                break
        return total

    async def _send(self, send: Send) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        signed = headers(send.secrets, send.event_id, int(time.time()), send.body)
        try:  # the shared guard re-checks the URL (DNS may have changed since it was saved)
            response = await fetch("POST", send.url, allow=self.settings.webhook_allow_hosts, what="the webhook URL",
                                   setting=ALLOW_SETTING, headers=signed, content=send.body.encode(),
                                   timeout=self.settings.webhook_timeout_seconds, max_bytes=64 * 1024,
                                   max_redirects=0)  # a receiver answers; it does not redirect
        except UnsafeUrl as exc:
            return Outcome(None, f"refused: {exc.message}"[:500], took(), refused=True)
        except OutboundError as exc:
            return Outcome(exc.upstream_status, str(exc.message)[:500], took())
        ok = 200 <= response.status_code < 300
        return Outcome(response.status_code, None if ok else f"HTTP {response.status_code}", took())

    async def _record(self, repo: WebhookRepository, delivery: WebhookDelivery, outcome: Outcome) -> None:
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        await repo.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts, at=utcnow(),
                                      status_code=outcome.status_code, error=outcome.error,
                                      duration_ms=outcome.duration_ms))
        schedule = self.settings.webhook_schedule_seconds or [0.0]
        if outcome.error is None:
            delivery.status, delivery.delivered_at = "delivered", utcnow()
        elif outcome.status_code == GONE:
            delivery.status = "failed"
            webhook = await repo.webhook(delivery.webhook_id)
            if webhook is not None:  # the receiver says it is gone for good: send it nothing more
                webhook.active, webhook.disabled_reason = False, "the receiver answered 410 Gone"
        elif outcome.refused or delivery.attempts >= len(schedule):
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = utcnow() + timedelta(seconds=schedule[delivery.attempts])


def dispatch_job(settings: Settings) -> Job:
    """The worker's job: on each tick, a dispatcher on the job's own engine drains the due deliveries."""

    async def run(session: AsyncSession) -> int:
        sessions = async_sessionmaker(session.bind, expire_on_commit=False, autoflush=False)
        return await WebhookDispatcher(sessions, settings).drain()

    return Job("webhook-dispatch", settings.webhook_poll_seconds, run, first_delay_seconds=settings.webhook_poll_seconds)
