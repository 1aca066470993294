"""The consumer runner: durable pull consumers with explicit ack; the handler's effect and the inbox
row commit together, so a redelivered event is acked without effect. A handler that keeps failing is
dead-lettered after `max_deliver`; a malformed or unknown message is dead-lettered at once."""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

import orjson
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, NotFoundError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import Database
from mlife_shared.events import Envelope, EventData, event_model, stream_for_subject
from mlife_shared.events.envelope import envelope_of
from mlife_shared.events.registry import model_of_version, streams
from mlife_shared.messaging.models import DeadLetter
from mlife_shared.messaging.repository import DeadLetterRepository, InboxRepository

log = structlog.get_logger(__name__)

Handler = Callable[[Envelope[Any], AsyncSession], Awaitable[None]]
"""What the runner calls: the envelope and the unit of work (a service's context is already bound)."""

E = TypeVar("E", bound=EventData)
C = TypeVar("C")


@dataclass(frozen=True)
class Subscription:
    """One durable consumer: `name` is unique within the service, `subject` is one registered subject.
    Services build theirs with `Subscription.of(Contract, handler, ctx)`; the constructor stays for the
    runner's own tests."""

    name: str
    subject: str
    handler: Handler
    max_deliver: int | None = None
    ack_wait_seconds: float = 30.0
    contract: type[EventData] | None = field(default=None, compare=False)
    stream: str | None = None  # set: a consumer of every subject of that stream (`subject` is then ">")

    @property
    def stream_name(self) -> str:
        return self.stream or stream_for_subject(self.subject)

    @property
    def expected(self) -> str | None:
        """The subject every message must carry (None: any registered subject of the stream)."""
        return None if self.stream else self.subject

    @classmethod
    def of_stream(cls, stream: str, handler: Handler, *, name: str | None = None, max_deliver: int | None = None,
                  ack_wait_seconds: float = 30.0) -> Subscription:
        """One durable consumer of every event of `stream` (e.g. the gateway's webhooks and alerts, which see
        all public events); the handler gets `Envelope[Any]` of whichever contract each message has."""
        if stream not in streams():
            raise ValueError(f"{stream} is no stream of the event registry")
        return cls(name=name or stream.lower().replace("_", "-"), subject=">", handler=handler,
                   max_deliver=max_deliver, ack_wait_seconds=ack_wait_seconds, stream=stream)

    @classmethod
    def of(cls, contract: type[E], handler: Callable[[Envelope[E], AsyncSession, C], Awaitable[None]], ctx: C, *,
           name: str | None = None, max_deliver: int | None = None,
           ack_wait_seconds: float = 30.0) -> Subscription:
        """The subscription of `handler` to `contract`'s subject, `ctx` bound as its third argument. The
        handler's first parameter must be annotated `Envelope[contract]`: a handler wired to another event
        (or to none) raises TypeError here, when the worker starts, rather than on its first message.
        `name` defaults to the subject with `-` for `.` and `_` (`dataset.grouped` → `dataset-grouped`); the
        durable consumer is `durable_name(service, subscription)`."""
        if event_model(contract.subject) is not contract:
            raise TypeError(f"{contract.__name__} is not the registered contract of {contract.subject!r} "
                            f"(decorate it with @register)")
        annotated = handler_event(handler)
        if annotated is not contract:
            shown = "no Envelope[<contract>] annotation" if annotated is None else f"Envelope[{annotated.__name__}]"
            raise TypeError(f"{_qualname(handler)} takes {shown} but is subscribed to {contract.subject!r}: "
                            f"annotate its event Envelope[{contract.__name__}] or subscribe it to its own contract")

        @functools.wraps(_unwrapped(handler))
        async def bound(event: Envelope[Any], session: AsyncSession) -> None:
            await handler(event, session, ctx)

        return cls(name=name or default_name(contract.subject), subject=contract.subject, handler=bound,
                   max_deliver=max_deliver, ack_wait_seconds=ack_wait_seconds, contract=contract)


def default_name(subject: str) -> str:
    return subject.replace(".", "-").replace("_", "-")


def _unwrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    func: Callable[..., Any] = inspect.unwrap(handler)
    while isinstance(func, functools.partial):
        func = inspect.unwrap(func.func)
    return func


def _qualname(handler: Callable[..., Any]) -> str:
    func = _unwrapped(handler)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def handler_event(handler: Callable[..., Any]) -> type[EventData] | None:
    """The contract `X` of a handler whose first parameter is annotated `Envelope[X]`, else None. Only that
    annotation is resolved (string annotations too), so the others may name types imported for type
    checking only."""
    func = _unwrapped(handler)
    params = list(inspect.signature(func).parameters.values())
    if not params:
        return None
    raw = getattr(func, "__annotations__", {}).get(params[0].name)
    if raw is None:
        return None
    holder = SimpleNamespace(__annotations__={"event": raw}, __globals__=getattr(func, "__globals__", {}))
    try:
        annotation = typing.get_type_hints(holder)["event"]
    except Exception as exc:  # an unresolvable annotation is a wiring error, said as such
        raise TypeError(f"{_qualname(handler)}: cannot resolve its event annotation {raw!r}: {exc}") from exc
    meta: dict[str, Any] = getattr(annotation, "__pydantic_generic_metadata__", None) or {}
    args: tuple[Any, ...] = meta.get("args") or ()
    if meta.get("origin") is not Envelope or len(args) != 1:
        return None
    event = args[0]  # Envelope[Any] is no contract (typing.Any is a class since Python 3.11)
    return event if isinstance(event, type) and issubclass(event, EventData) else None


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    failures: int = 0
    lag: dict[str, int] = field(default_factory=dict)


def durable_name(service: str, sub: Subscription) -> str:
    return f"{service}-{sub.name}".replace(".", "_")


class ConsumerRunner:
    def __init__(self, service: str, db: Database, js: JetStreamContext, subscriptions: list[Subscription], *,
                 max_deliver: int = 5, backoff: list[float] | None = None, batch: int = 128) -> None:
        self.service = service
        self.db = db
        self.js = js
        self.subscriptions = subscriptions
        self.max_deliver = max_deliver
        self.backoff = backoff or [0.5, 2.0, 10.0, 30.0]
        # Up to `batch` messages per fetch and per transaction; a fetch returns what is there at once (no_wait
        # first), so a bigger batch adds no latency, only fewer commits when a backlog builds up.
        self.batch = batch
        self.stats = ConsumerStats()

    async def ensure_consumer(self, sub: Subscription) -> None:
        await self.js.add_consumer(sub.stream_name, self._config(sub))

    def _config(self, sub: Subscription) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable_name(self.service, sub),
            filter_subject=None if sub.stream else sub.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=sub.ack_wait_seconds,
            # One more than ours, so the runner always sees the last delivery and dead-letters it itself.
            max_deliver=(sub.max_deliver or self.max_deliver) + 1,
            max_ack_pending=1000,
        )

    async def run(self, stop: asyncio.Event) -> None:
        for sub in self.subscriptions:
            if sub.stream is not None:
                continue
            if event_model(sub.subject) is None:
                raise ValueError(f"{sub.subject} is not a registered subject")
            if sub.contract is not None and event_model(sub.subject) is not sub.contract:
                raise ValueError(f"{sub.subject} is registered by {event_model(sub.subject)!r}, "
                                 f"not {sub.contract.__name__}")
        tasks = [asyncio.create_task(self._loop(sub, stop), name=f"consumer-{sub.name}")
                 for sub in self.subscriptions]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await t

    async def _loop(self, sub: Subscription, stop: asyncio.Event) -> None:
        stream = sub.stream_name
        durable = durable_name(self.service, sub)
        psub = None
        waiting = False
        try:
            while not stop.is_set():
                try:
                    if psub is None:
                        # (Re)create the durable consumer each time we (re)bind: NATS may have been away.
                        await self.ensure_consumer(sub)
                        psub = await self.js.pull_subscribe_bind(durable, stream=stream)
                    msgs = await psub.fetch(self.batch, timeout=1.0)
                except (FetchTimeoutError, NatsTimeoutError, TimeoutError):  # nothing to fetch (asyncio's own, too)
                    continue
                except asyncio.CancelledError:
                    raise
                except NotFoundError:  # the producer has not made its stream yet (only it may): wait for it
                    if psub is None and not waiting:
                        log.info("consumer_waiting_for_stream", consumer=durable, stream=stream)
                    waiting = True
                    await _unsubscribe(psub)
                    psub = None
                    await asyncio.sleep(0.5)
                    continue
                except Exception as exc:  # noqa: BLE001 - NATS away: retry
                    log.warning("consumer_fetch_failed", consumer=durable, error=repr(exc))
                    await _unsubscribe(psub)
                    psub = None
                    await asyncio.sleep(0.5)
                    continue
                await self.handle_batch(sub, msgs)
        finally:
            # A pull request left open would take the next message to a subscription nobody reads.
            await _unsubscribe(psub)

    async def handle_batch(self, sub: Subscription, msgs: list[Msg]) -> None:
        """Apply a fetched batch in one transaction (the common case, one commit for many events); if any
        handler fails, fall back to one transaction per message so the failure stays with its message."""
        consumer = durable_name(self.service, sub)
        parsed: list[tuple[Msg, Envelope[Any]]] = []
        for msg in msgs:
            try:
                parsed.append((msg, parse(msg, expected=sub.expected)))
            except PoisonMessage as exc:
                await self._dead_letter(consumer, msg, reason=exc.reason, error=str(exc),
                                        deliveries=msg.metadata.num_delivered)
        if len(parsed) > 1:
            heartbeat = asyncio.create_task(_keep_alive([m for m, _ in parsed], sub.ack_wait_seconds))  # noqa: RUF006 - cancelled in finally
            try:
                async with self.db.transaction() as session:
                    new = await InboxRepository(session).record_many(consumer, [(e.id, e.type) for _, e in parsed])
                    applied = []
                    for _, env in parsed:
                        # A redelivered event (or one repeated within the batch) is applied once.
                        applied.append(env.id in new)
                        if applied[-1]:
                            new.discard(env.id)
                            with structlog.contextvars.bound_contextvars(event_id=str(env.id)):
                                await sub.handler(env, session)
            except Exception as exc:  # noqa: BLE001 - isolate the failing message below
                log.info("batch_fallback", consumer=consumer, size=len(parsed), error=repr(exc))
            else:
                for (msg, _), done in zip(parsed, applied, strict=True):
                    self._count(done)
                    await msg.ack()
                return
            finally:
                heartbeat.cancel()
        for msg, envelope in parsed:
            await self.handle(sub, msg, envelope)

    def _count(self, applied: bool) -> None:
        if applied:
            self.stats.handled += 1
        else:
            self.stats.duplicates += 1

    async def handle(self, sub: Subscription, msg: Msg, envelope: Envelope[Any]) -> None:
        consumer = durable_name(self.service, sub)
        deliveries = msg.metadata.num_delivered
        limit = sub.max_deliver or self.max_deliver
        bound = structlog.contextvars.bound_contextvars(event_id=str(envelope.id),
                                                       correlation_id=str(envelope.correlation_id))
        with bound:
            heartbeat = asyncio.create_task(_keep_alive([msg], sub.ack_wait_seconds))
            try:
                applied = await self._apply(consumer, sub, envelope)
            except Exception as exc:  # noqa: BLE001 - the handler's failure decides retry or dead letter
                heartbeat.cancel()
                self.stats.failures += 1
                if deliveries >= limit:
                    await self._dead_letter(consumer, msg, reason="failed", error=repr(exc), deliveries=deliveries,
                                            event_id=str(envelope.id))
                else:
                    delay = self.backoff[min(deliveries - 1, len(self.backoff) - 1)]
                    log.warning("handler_failed", consumer=consumer, deliveries=deliveries, retry_in=delay,
                                error=repr(exc))
                    await msg.nak(delay=delay)
                return
            finally:
                heartbeat.cancel()
            self._count(applied)
            await msg.ack()

    async def _apply(self, consumer: str, sub: Subscription, envelope: Envelope[Any]) -> bool:
        async with self.db.transaction() as session:
            return await self.apply_in(session, consumer, sub, envelope)

    @staticmethod
    async def apply_in(session: AsyncSession, consumer: str, sub: Subscription, envelope: Envelope[Any]) -> bool:
        # The inbox row goes first: a concurrent delivery of the same event waits on it, then skips.
        if not await InboxRepository(session).record(consumer, envelope.id, envelope.type):
            return False
        with structlog.contextvars.bound_contextvars(event_id=str(envelope.id)):
            await sub.handler(envelope, session)
        return True

    async def _dead_letter(self, consumer: str, msg: Msg, *, reason: str, error: str, deliveries: int,
                           event_id: str | None = None) -> None:
        letter = DeadLetter(consumer=consumer, subject=msg.subject, event_id=event_id,
                            payload=msg.data.decode("utf-8", errors="replace")[:100_000], reason=reason,
                            error=error[:10_000], deliveries=deliveries, stream_seq=msg.metadata.sequence.stream)
        try:
            async with self.db.transaction() as session:
                await DeadLetterRepository(session).add(letter)
        except Exception as exc:  # noqa: BLE001 - keep the message for a later try rather than lose it
            log.error("dead_letter_write_failed", consumer=consumer, error=repr(exc))
            await msg.nak(delay=self.backoff[-1])
            return
        self.stats.dead_lettered += 1
        log.error("dead_lettered", consumer=consumer, reason=reason, error=error[:500])
        await msg.term()

    async def lag(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sub in self.subscriptions:
            with suppress(Exception):
                info = await self.js.consumer_info(sub.stream_name, durable_name(self.service, sub))
                out[durable_name(self.service, sub)] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        self.stats.lag = out
        return out


async def _unsubscribe(psub: Any) -> None:
    if psub is not None:
        with suppress(Exception):
            await psub.unsubscribe()


class PoisonMessage(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse(msg: Msg, *, expected: str | None = None) -> Envelope[Any]:
    """The envelope of a message, or PoisonMessage saying why it can never be handled."""
    return parse_data(msg.data, msg.headers, expected=expected)


def parse_data(data: bytes, headers: Mapping[str, str] | None, *, expected: str | None = None) -> Envelope[Any]:
    """`parse` for a message's body and headers (a dead letter keeps the body of the message it was)."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # its own words name the literal it hoped for ("expected 'null'")
        raise PoisonMessage("malformed", f"not JSON: it breaks at line {exc.lineno} column {exc.colno} "
                                         f"(char {exc.pos})") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage("malformed", f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PoisonMessage("malformed", "the envelope is not a JSON object")
    subject = raw.get("type")
    model = event_model(subject) if isinstance(subject, str) else None
    if model is None:
        raise PoisonMessage("unknown", f"unknown event type {subject!r}")
    if expected is not None and subject != expected:
        raise PoisonMessage("unknown", f"event type {subject!r} on a consumer of {expected!r}")
    version = raw.get("version", 1)
    if version != model.schema_version:  # published before the producer moved on: its own version's contract
        model = model_of_version(model.subject, version) if isinstance(version, int) else None
        if model is None:
            raise PoisonMessage("unknown", f"{subject} version {version!r} is not a served version of its contract")
    header_id = (headers or {}).get("Nats-Msg-Id")
    try:
        envelope = envelope_of(model).model_validate(raw)
    except ValidationError as exc:
        raise PoisonMessage("malformed", f"invalid {subject} envelope: {exc}") from exc
    if header_id is not None and header_id != str(envelope.id):
        raise PoisonMessage("malformed", "Nats-Msg-Id does not match the envelope id")
    return envelope


async def _keep_alive(msgs: list[Msg], ack_wait: float) -> None:
    """Long handlers: tell JetStream we are still working so it does not redeliver meanwhile."""
    with suppress(asyncio.CancelledError, Exception):
        while True:
            await asyncio.sleep(max(ack_wait / 3, 0.5))
            for msg in msgs:
                await msg.in_progress()

