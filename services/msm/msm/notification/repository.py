from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from mlife_shared.repository import Repository
from msm.notification.models import WebhookDelivery, WebhookSubscription


class WebhookRepository(Repository):
    async def subscription(self, subscription_id: uuid.UUID) -> WebhookSubscription | None:
        return await self.get(WebhookSubscription, subscription_id)

    async def delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return await self.get(WebhookDelivery, delivery_id)

    async def subscriptions(self) -> Sequence[WebhookSubscription]:
        return (await self.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))).all()

    async def active(self) -> Sequence[WebhookSubscription]:
        return (await self.session.scalars(select(WebhookSubscription).where(WebhookSubscription.active))).all()

    async def delete(self, row: WebhookSubscription) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def deliveries(self, subscription_id: uuid.UUID, limit: int) -> Sequence[WebhookDelivery]:
        statement = (select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
                     .order_by(WebhookDelivery.created_at.desc()).limit(limit))
        return (await self.session.scalars(statement)).all()

    async def claim_due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        """Pending deliveries whose time has come; rows locked so that replicas never send one twice (rows
        another replica holds are skipped)."""
        statement = (select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                                   WebhookDelivery.next_attempt_at <= now)
                     .order_by(WebhookDelivery.next_attempt_at).limit(limit))
        return (await self.session.scalars(self.lock(statement, skip_locked=True))).all()
