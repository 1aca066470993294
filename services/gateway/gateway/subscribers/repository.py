from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from gateway.subscribers.models import Subscriber, SubscriberReplay
from mlife_shared.repository import Repository


class SubscriberRepository(Repository):
    async def add_named(self, subscriber: Subscriber) -> bool:
        """Insert it; False when another subscriber took the name first (two creates racing on one name: the
        unique index decides, before anything is made in NATS)."""
        try:
            async with self.session.begin_nested():  # a savepoint: the transaction stays usable either way
                await self.add(subscriber)
        except IntegrityError:
            return False
        return True

    async def get_with_durables(self, subscriber_id: uuid.UUID) -> Subscriber | None:
        row: Subscriber | None = await self.one(select(Subscriber).where(Subscriber.id == subscriber_id)
                                                .options(selectinload(Subscriber.durables)))
        return row

    async def get_by_name(self, name: str) -> Subscriber | None:
        row: Subscriber | None = await self.one(select(Subscriber).where(Subscriber.name == name)
                                                .options(selectinload(Subscriber.durables)))
        return row

    async def list_all(self) -> Sequence[Subscriber]:
        rows: Sequence[Subscriber] = await self.all(select(Subscriber).order_by(Subscriber.name)
                                                    .options(selectinload(Subscriber.durables)))
        return rows

    async def delete(self, subscriber: Subscriber) -> None:
        await self.session.delete(subscriber)
        await self.session.flush()

    async def replays(self, subscriber_id: uuid.UUID) -> Sequence[SubscriberReplay]:
        rows: Sequence[SubscriberReplay] = await self.all(
            select(SubscriberReplay).where(SubscriberReplay.subscriber_id == subscriber_id)
            .order_by(SubscriberReplay.requested_at.desc()))
        return rows
