from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from gateway.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookReplay
from mlife_shared.repository import Page, Repository


class WebhookRepository(Repository):
    async def webhook(self, webhook_id: uuid.UUID) -> Webhook | None:
        return await self.get(Webhook, webhook_id)

    async def webhooks(self) -> Sequence[Webhook]:
        return await self.all(select(Webhook).order_by(Webhook.created_at, Webhook.id))

    async def active(self) -> Sequence[Webhook]:
        return await self.all(select(Webhook).where(Webhook.active).order_by(Webhook.created_at))

    async def delete(self, row: Webhook) -> None:
        """The webhook, its deliveries and their attempts (ON DELETE CASCADE). Its deliveries are locked first, in
        id order, as the dispatcher locks the ones it records: the cascade alone takes them in the table's order,
        and a dispatcher recording two of them meanwhile deadlocked with it (one of the two then failed)."""
        await self.session.execute(self.lock(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == row.id)
                                             .order_by(WebhookDelivery.id)))
        await self.session.delete(row)
        await self.session.flush()

    async def delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return await self.get(WebhookDelivery, delivery_id)

    async def delivery_for_update(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return await self.get_for_update(WebhookDelivery, delivery_id)

    async def deliveries(self, webhook_id: uuid.UUID, *, limit: int, offset: int) -> Page[WebhookDelivery]:
        statement = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                     .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()))
        return await self.page(statement, limit=limit, offset=offset)

    async def attempts(self, delivery_ids: Iterable[uuid.UUID]) -> Sequence[WebhookAttempt]:
        statement = (select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
                     .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number))
        return await self.all(statement)

    async def claim_due(self, now: datetime, limit: int) -> Sequence[tuple[WebhookDelivery, Webhook]]:
        """Pending deliveries of active webhooks whose time has come, oldest first, locked: rows another
        dispatcher holds are skipped, so two gateway workers never take one delivery at the same time."""
        statement = (select(WebhookDelivery, Webhook).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                     .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                            Webhook.active)
                     .order_by(WebhookDelivery.next_attempt_at).limit(limit))
        rows = await self.session.execute(self.lock(statement, skip_locked=True, of=WebhookDelivery))
        return [(delivery, webhook) for delivery, webhook in rows.tuples()]

    async def replays(self, webhook_id: uuid.UUID, limit: int) -> Sequence[WebhookReplay]:
        statement = (select(WebhookReplay).where(WebhookReplay.webhook_id == webhook_id)
                     .order_by(WebhookReplay.requested_at.desc()).limit(limit))
        return await self.all(statement)
