"""Outside subscribers: a maintainer names the public subjects an outside system follows; MLife makes its
durable consumers (one per stream holding a subject it asked for) and a NATS login of its own, whose password is
shown once. nats-server asks the gateway about that login (auth callout, gateway/subscribers/callout.py), which
allows it its own durables and inbox only. The durables live in NATS, the rest in this database: a failure
between the two is undone on the NATS side (create) or finished by trying again (delete)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events.schemas import ReplayRequest
from gateway.subscribers.exceptions import (
    BusUnavailable,
    InvalidSubscription,
    StreamMissing,
    SubscriberNameTaken,
    SubscriberNotFound,
)
from gateway.subscribers.models import Subscriber, SubscriberDurable, SubscriberReplay
from gateway.subscribers.repository import SubscriberRepository
from gateway.subscribers.schemas import DurableRead, SubscriberCreate
from mlife_shared.db import utcnow
from mlife_shared.events.asyncapi import public_events
from mlife_shared.events.registry import stream_for_subject, subject_matches
from mlife_shared.messaging.natsauth import subscriber_user

NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def durable_prefix(name: str) -> str:
    return subscriber_user(name)


def plan_durables(name: str, patterns: Sequence[str]) -> dict[str, list[str]]:
    """Stream -> the public subjects of `patterns` it holds; a pattern that matches no public subject is refused."""
    events = public_events()
    plan: dict[str, list[str]] = {}
    for pattern in patterns:
        matched = [subject for subject in events if subject_matches(pattern, subject)]
        if not matched:
            raise InvalidSubscription(f"{pattern!r} matches no public MLife event; the subjects are: "
                                      f"{', '.join(events)}")
        for subject in matched:
            subjects = plan.setdefault(stream_for_subject(subject), [])
            if subject not in subjects:
                subjects.append(subject)
    return dict(sorted(plan.items()))


def check_filter(filter_: dict[str, str], subjects: Sequence[str]) -> None:
    """Each filter field must be a payload field of at least one of the subscribed events."""
    events = public_events()
    fields: set[str] = set()
    for subject in subjects:
        model: type[BaseModel] = events[subject]
        fields.update(model.model_fields)
    unknown = sorted(set(filter_) - fields)
    if unknown:
        raise InvalidSubscription(f"filter field(s) {', '.join(unknown)} are in none of the events of "
                                  f"{', '.join(subjects)}; their fields are: {', '.join(sorted(fields))}")


@dataclass
class DurableState:
    pending: int | None = None
    ack_pending: int | None = None
    ack_floor: int | None = None
    delivered: int | None = None


class Durables:
    """The subscribers' consumers in JetStream (the gateway's NATS user may make, read and delete them)."""

    def __init__(self, js: JetStreamContext | None) -> None:
        self._js = js

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable()
        return self._js

    async def make(self, durable: SubscriberDurable, *, deliver: str = "all", since: datetime | None = None,
                   sequence: int | None = None) -> None:
        """(Re)create the durable at a point: its earlier position, if any, is dropped."""
        policy = DeliverPolicy.ALL if deliver == "all" else DeliverPolicy.NEW
        if since is not None:
            policy = DeliverPolicy.BY_START_TIME
        if sequence is not None:
            policy = DeliverPolicy.BY_START_SEQUENCE
        config = ConsumerConfig(durable_name=durable.durable, filter_subjects=list(durable.filter_subjects),
                                ack_policy=AckPolicy.EXPLICIT, deliver_policy=policy, opt_start_time=since,
                                opt_start_seq=sequence)
        await self.remove(durable)
        try:
            await self.js.add_consumer(durable.stream, config)
        except NotFoundError as exc:
            raise StreamMissing(f"the stream {durable.stream} does not exist yet: the service that publishes "
                                f"{', '.join(durable.filter_subjects)} has not started; try again once it has") from exc
        except NATS_ERRORS as exc:
            raise BusUnavailable(f"NATS refused the durable {durable.durable}: {exc}") from exc

    async def remove(self, durable: SubscriberDurable) -> None:
        try:
            await self.js.delete_consumer(durable.stream, durable.durable)
        except NotFoundError:
            pass
        except NATS_ERRORS as exc:
            raise BusUnavailable(f"NATS could not delete the durable {durable.durable}: {exc}") from exc

    async def state(self, durable: SubscriberDurable) -> DurableState:
        if self._js is None:
            return DurableState()
        try:
            info = await self._js.consumer_info(durable.stream, durable.durable)
        except NATS_ERRORS:
            return DurableState()
        return DurableState(pending=info.num_pending, ack_pending=info.num_ack_pending,
                            ack_floor=info.ack_floor.stream_seq if info.ack_floor else None,
                            delivered=info.delivered.stream_seq if info.delivered else None)


class SubscriberService:
    def __init__(self, session: AsyncSession, js: JetStreamContext | None) -> None:
        self.session = session
        self.repo = SubscriberRepository(session)
        self.durables = Durables(js)

    async def create(self, body: SubscriberCreate, *, by: str) -> tuple[Subscriber, str]:
        """A subscriber, its durables in NATS and its password (returned here only)."""
        plan = plan_durables(body.name, body.subjects)
        check_filter(body.filter, [s for subjects in plan.values() for s in subjects])
        password = secrets.token_urlsafe(32)
        subscriber = Subscriber(name=body.name, description=body.description, subjects=list(body.subjects),
                                filter=dict(body.filter), password_hash=hash_password(password), created_by=by,
                                durables=[SubscriberDurable(stream=stream, filter_subjects=subjects,
                                                            durable=f"{durable_prefix(body.name)}-{stream}")
                                          for stream, subjects in plan.items()])
        if await self.repo.get_by_name(body.name) is not None or not await self.repo.add_named(subscriber):
            raise SubscriberNameTaken(f"a subscriber named {body.name!r} exists")
        made: list[SubscriberDurable] = []
        try:
            for durable in subscriber.durables:
                await self.durables.make(durable, deliver=body.deliver)
                made.append(durable)
        except BaseException:
            for durable in made:
                try:
                    await self.durables.remove(durable)
                except BusUnavailable:
                    pass  # NATS went away: the leftover durable is replaced by the next create of this name
            raise
        return subscriber, password

    async def get(self, subscriber_id: uuid.UUID) -> Subscriber:
        subscriber = await self.repo.get_with_durables(subscriber_id)
        if subscriber is None:
            raise SubscriberNotFound()
        return subscriber

    async def list_all(self) -> Sequence[Subscriber]:
        return await self.repo.list_all()

    async def durable_states(self, subscriber: Subscriber) -> list[DurableRead]:
        out = []
        for durable in subscriber.durables:
            state = await self.durables.state(durable)
            out.append(DurableRead(stream=durable.stream, durable=durable.durable,
                                   filter_subjects=list(durable.filter_subjects), **state.__dict__))
        return out

    async def delete(self, subscriber_id: uuid.UUID) -> None:
        """Its durables go first (a NATS failure leaves it listed, to delete again), then its login."""
        subscriber = await self.get(subscriber_id)
        for durable in subscriber.durables:
            await self.durables.remove(durable)
        await self.repo.delete(subscriber)

    async def rotate(self, subscriber_id: uuid.UUID) -> tuple[Subscriber, str]:
        """A new password; the old one stops working for new connections at once."""
        subscriber = await self.get(subscriber_id)
        password = secrets.token_urlsafe(32)
        subscriber.password_hash = hash_password(password)
        subscriber.rotated_at = utcnow()
        await self.session.flush()
        return subscriber, password

    async def replay(self, subscriber_id: uuid.UUID, body: ReplayRequest, *, by: str) -> SubscriberReplay:
        """Recreate the durables at a time (all of them) or at a stream's sequence (that stream's), recorded."""
        subscriber = await self.get(subscriber_id)
        if body.since is not None and body.since > utcnow():
            raise InvalidSubscription("`since` is in the future: nothing would be replayed")
        targets = list(subscriber.durables)
        if body.stream is not None:
            targets = [d for d in subscriber.durables if d.stream == body.stream]
            if not targets:
                raise InvalidSubscription(f"{subscriber.name} has no durable on {body.stream!r}; its streams: "
                                          f"{', '.join(d.stream for d in subscriber.durables)}")
        audit = await self.repo.add(SubscriberReplay(subscriber_id=subscriber.id, subscriber_name=subscriber.name,
                                                     requested_by=by, since=body.since, stream=body.stream,
                                                     sequence=body.sequence))
        for durable in targets:
            await self.durables.make(durable, since=body.since, sequence=body.sequence)
        return audit

    async def replays(self, subscriber_id: uuid.UUID) -> Sequence[SubscriberReplay]:
        await self.get(subscriber_id)
        return await self.repo.replays(subscriber_id)

    async def authenticate(self, user: str, password: str) -> Subscriber | None:
        """The subscriber whose NATS login this is (the auth callout asks), or None."""
        prefix = subscriber_user("")
        if not user.startswith(prefix):
            return None
        subscriber = await self.repo.get_by_name(user[len(prefix):])
        if subscriber is None or not hmac.compare_digest(subscriber.password_hash, hash_password(password)):
            return None
        return subscriber
