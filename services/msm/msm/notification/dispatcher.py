"""Sends pending webhook deliveries: signed, with a timeout, retried with backoff, each attempt logged.
A delivery is leased (its next attempt pushed forward) before it is sent, so several API replicas or a
crash never lose it; one may at worst be sent twice, which the `webhook-id` header lets receivers drop."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import timedelta

import structlog

from mlife_shared.db import Database, utcnow
from mlife_shared.outbound import OutboundError, UnsafeUrl, fetch
from msm.config import Settings
from msm.notification.models import WebhookDelivery, WebhookSubscription
from msm.notification.repository import WebhookRepository
from msm.notification.service import ALLOW_SETTING, backoff, sign

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)


class WebhookDispatcher:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def run_once(self, limit: int = 50) -> int:
        """Send every due delivery once; returns how many were attempted."""
        async with self.db.transaction() as session:
            repo = WebhookRepository(session)
            due = await repo.claim_due(utcnow(), limit)
            jobs = []
            for delivery in due:
                sub = await repo.subscription(delivery.subscription_id)
                delivery.next_attempt_at = utcnow() + LEASE
                jobs.append((delivery.id, sub.url if sub else None, sub.secret if sub else None,
                             delivery.body))
        results = await asyncio.gather(*(self._send(*job) for job in jobs))
        async with self.db.transaction() as session:
            repo = WebhookRepository(session)
            for (delivery_id, *_), (code, error) in zip(jobs, results, strict=True):
                if (sent := await repo.delivery(delivery_id)) is not None:
                    self._record(sent, code, error)
        return len(jobs)

    async def _send(self, delivery_id: object, url: str | None, secret: str | None,
                    body: str) -> tuple[int | None, str | None]:
        if url is None or secret is None:
            return None, "the subscription was deleted"
        timestamp = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": str(delivery_id),
                   "webhook-timestamp": str(timestamp), "webhook-signature": sign(secret, str(delivery_id),
                                                                                 timestamp, body)}
        try:  # the shared guard re-checks the URL (DNS may have changed since it was saved), on every hop
            response = await fetch("POST", url, allow=self.settings.webhook_allow_hosts, what="the webhook URL",
                                   setting=ALLOW_SETTING, headers=headers, content=body.encode(),
                                   timeout=self.settings.webhook_timeout_seconds, max_bytes=64 * 1024,
                                   max_redirects=0)  # a webhook receiver answers; it does not redirect
        except UnsafeUrl as exc:
            return None, f"refused: {exc.message}"[:500]
        except OutboundError as exc:
            return exc.upstream_status, str(exc.message)[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def _record(self, delivery: WebhookDelivery, code: int | None, error: str | None) -> None:
        delivery.attempts += 1
        delivery.last_status_code = code
        delivery.last_error = error
        delivery.log = [*delivery.log, {"at": utcnow().isoformat(), "status_code": code, "error": error}]
        if error is None:
            delivery.status = "delivered"
            delivery.delivered_at = utcnow()
        elif delivery.attempts >= self.settings.webhook_max_attempts or (error or "").startswith("refused"):
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = utcnow() + backoff(self.settings, delivery.attempts)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again next tick
                log.warning("webhook_dispatch_failed", error=repr(exc))
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_seconds)

    async def close(self) -> None:
        """Nothing to release: every delivery uses its own connection to the address it checked."""


__all__ = ["WebhookDispatcher", "WebhookSubscription"]
