"""Following MLife's events from another system (docs/events.md): `subscribe` yields typed events from every
stream that holds the subjects you ask for, with explicit acknowledgement.

    from mlife.events import subscribe

    async for event in subscribe(["model.>", "badcase.created"], durable="acme-dashboard",
                                 password_file="~/.mlife/nats/reader.password"):
        print(event.type, event.payload)     # payload: the contract's pydantic model
        await event.ack()                     # or event.nak(delay=30) to see it again later

A pattern is matched against the published contracts, so `model.>` means every model event wherever it is
stored (`model.uploaded` is MTT's stream, the others MSM's): one durable pull consumer per stream, named
`<durable>-<stream>`, remembers where you stopped across restarts. `since` replays from a time (within the
streams' retention) for a consumer made new.

A subscriber a maintainer made in the gateway (`/api/gateway/subscribers`, `mlife subscribers create`) has a
login of its own that may read its provisioned durables and nothing else: pass `bind=True` (the durables exist;
it cannot create one), and its `filter`, which NATS cannot apply to a payload, so this function does: an event
whose payload lacks a filter field or has another value is acknowledged and skipped.

    async for event in subscribe(["model.>"], durable="sub-acme", user="sub-acme", password=..., bind=True,
                                 filter={"function": "digits"}):
        ...

Replays of such a subscriber are made through the gateway (`POST /api/gateway/subscribers/{id}/replay`).

Leave the loop through `contextlib.aclosing(subscribe(...))` (or let it end): the subscription then closes at
once and gives back (nak) what it had fetched but not handed out, so the next start gets those events first and
in order. `versions={"badcase.created": 1}` pins a subject to an earlier contract version (docs/events.md)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import BaseModel

from mlife_shared.events.asyncapi import public_events
from mlife_shared.events.registry import (
    UnknownVersion,
    downgrade,
    model_of_version,
    stream_for_subject,
    subject_matches,
)
from mlife_shared.events.registry import (
    versions as served_versions,
)
from mlife_shared.messaging.bus import inbox_prefix


@dataclass
class Event:
    """One event: its envelope's fields, its payload typed by its contract, and where it is in its stream."""

    id: str
    type: str
    version: int
    source: str
    time: str
    data: dict[str, Any]
    payload: BaseModel | None  # None for a subject this SDK does not know (a newer platform)
    correlation_id: str | None
    causation_id: str | None
    stream: str
    sequence: int
    _msg: Msg = field(repr=False)

    async def ack(self) -> None:
        """Done with it: it is not delivered to this durable again."""
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Not now: deliver it again (after `delay` seconds)."""
        await self._msg.nak(delay=delay)


def streams_for(patterns: Sequence[str]) -> dict[str, list[str]]:
    """Stream -> the published subjects `patterns` select in it; an unknown pattern is an error, not silence."""
    by_stream: dict[str, list[str]] = {}
    for pattern in patterns:
        subjects = [s for s in public_events() if subject_matches(pattern, s)]
        if not subjects:
            raise ValueError(f"{pattern!r} matches no MLife event; the subjects are: {', '.join(public_events())}")
        for subject in subjects:
            by_stream.setdefault(stream_for_subject(subject), [])
            if subject not in by_stream[stream_for_subject(subject)]:
                by_stream[stream_for_subject(subject)].append(subject)
    return by_stream


def _event(msg: Msg, versions: Mapping[str, int]) -> Event:
    raw = json.loads(msg.data)
    subject, version, data = raw["type"], int(raw.get("version", 1)), raw.get("data", {})
    pinned = versions.get(subject)
    if pinned is not None and pinned < version and subject in public_events():
        with suppress(UnknownVersion):  # past its sunset the pin no longer holds: the event as it is
            data, version = downgrade(subject, data, version, pinned), pinned
    meta = msg.metadata
    return Event(id=raw["id"], type=subject, version=version, source=raw.get("source", ""),
                 time=raw.get("time", ""), data=data, payload=_payload(subject, version, data),
                 correlation_id=raw.get("correlation_id"), causation_id=raw.get("causation_id"),
                 stream=meta.stream, sequence=int(meta.sequence.stream), _msg=msg)


def _check_versions(versions: Mapping[str, int]) -> None:
    """A pin names a public subject and a version of it served today: a typo is an error, not silence."""
    for subject, version in versions.items():
        if subject not in public_events():
            raise ValueError(f"versions: {subject!r} is no MLife event; the subjects are: {', '.join(public_events())}")
        if version not in served_versions(subject):
            raise ValueError(f"versions: {subject} has no version {version} served (served: {served_versions(subject)})")


def _payload(subject: str, version: int, data: dict[str, Any]) -> BaseModel | None:
    """The payload typed by its version's contract; fields this SDK does not know yet (a newer platform adds
    optional ones within a version) are left out of it, and stay in `data`. None: a subject or version this SDK
    does not know, or a payload it cannot read."""
    model = model_of_version(subject, version) if subject in public_events() else None
    if model is None:
        return None
    try:
        return model.model_validate({k: v for k, v in data.items() if k in model.model_fields})
    except ValueError:  # pydantic's ValidationError
        return None


def _password(password: str | None, password_file: str | os.PathLike[str] | None) -> str:
    if password is not None:
        return password
    if password_file is not None:
        return Path(password_file).expanduser().read_text().strip()
    return os.environ.get("MLIFE_NATS_PASSWORD", "")


def passes(data: Mapping[str, Any], where: Mapping[str, str]) -> bool:
    """A subscriber's filter: every field present in the payload with that value (compared as text)."""
    return all(key in data and str(data[key]) == value for key, value in where.items())


async def subscribe(subjects: str | Sequence[str], *, durable: str, url: str | None = None, user: str = "reader",
                    password: str | None = None, password_file: str | os.PathLike[str] | None = None,
                    since: datetime | None = None, batch: int = 20, wait: float = 5.0, bind: bool = False,
                    filter: Mapping[str, str] | None = None,  # noqa: A002 - the API's name
                    versions: Mapping[str, int] | None = None) -> AsyncGenerator[Event, None]:
    """Events of `subjects` (exact or patterns: `model.>`, `badcase.*`) in stream order per stream, until the
    loop is left. `url` defaults to $MLIFE_NATS_URL or nats://127.0.0.1:4222, the password to `password_file`
    or $MLIFE_NATS_PASSWORD. Unacknowledged events come back after the consumers' ack wait (30 s). `bind`: use
    the durables as they are (a gateway subscriber's), never create one; `filter`: see the module docstring.
    A refused login raises PermissionError; a gateway subscriber's login that expires (the server then asks the
    gateway again) is renewed by logging in again. `versions` pins subjects to an earlier version of their
    contract ({"badcase.created": 1}): each event comes downgraded to it until that version's sunset
    (docs/events.md, "Versions"). Events fetched but not yet handed out when the loop is left are given back
    (nak) at once, so a restarted subscriber gets them first, in order."""
    if bind and since is not None:
        raise ValueError("a provisioned subscriber replays through the gateway (POST …/subscribers/{id}/replay)")
    plan = streams_for([subjects] if isinstance(subjects, str) else list(subjects))
    _check_versions(versions or {})
    login = Login(url or os.environ.get("MLIFE_NATS_URL", "nats://127.0.0.1:4222"), user,
                  _password(password, password_file))
    while True:  # one session per login; a session that ends without an error ended with its login's expiry
        async with aclosing(_session(login, plan, durable, bind=bind, since=since, batch=batch, wait=wait,
                                     where=filter or {}, versions=versions or {})) as events:
            async for event in events:
                yield event


@dataclass(frozen=True)
class Login:
    url: str
    user: str
    password: str = field(repr=False)


async def _session(login: Login, plan: dict[str, list[str]], durable: str, *, bind: bool, since: datetime | None,
                   batch: int, wait: float, where: Mapping[str, str],
                   versions: Mapping[str, int]) -> AsyncGenerator[Event, None]:
    """The events of one connection, until its login expires (it returns) or something fails (it raises)."""
    queue: asyncio.Queue[Event | BaseException] = asyncio.Queue(maxsize=batch)
    nc = await _connect(login, queue)
    tasks: list[asyncio.Task[None]] = []
    unsent: list[Msg] = []  # fetched by a pump, not yet queued when it stopped
    subs: list[tuple[str, Any]] = []
    try:
        subs = await _consumers(nc.jetstream(), plan, durable, bind=bind, since=since)
        for name, sub in subs:
            tasks.append(asyncio.create_task(_pump(sub, name, queue, batch, wait, versions, unsent)))
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                if "authentication expired" in str(nc.last_error).lower():
                    return
                raise item
            if where and not passes(item.data, where):
                await item.ack()  # not for this subscriber: NATS cannot filter on a payload
                continue
            yield item
    finally:
        await _stop(tasks, wait)
        with suppress(Exception):  # what the server sent before this round trip has arrived: take it
            await nc.flush()
        for _, sub in subs:  # no interest left in a pull still waiting: the server drops it, never fills it
            unsent.extend(_arrived(sub))
            with suppress(Exception):
                await sub.unsubscribe()
        await _give_back(nc, queue, unsent)
        await nc.close()  # a pull still waiting at the server ends with the connection


async def _stop(tasks: list[asyncio.Task[None]], wait: float) -> None:
    """Cancel the pumps and wait for them (each waits for its pull in flight, at most `wait`); one that is still
    running after that is cancelled again, so that a stop never hangs."""
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=wait + 2.0)


def _arrived(sub: Any) -> list[Msg]:
    """What a pull that was cancelled had already received (nats-py keeps it in the subscription's queue)."""
    queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
    msgs: list[Msg] = []
    while queue is not None and not queue.empty():
        msg = queue.get_nowait()
        if (msg.reply or "").startswith("$JS.ACK."):  # an event, not a status (408, 404, a heartbeat)
            msgs.append(msg)
    return msgs


async def _give_back(nc: NATS, queue: asyncio.Queue[Event | BaseException], unsent: list[Msg]) -> None:
    """Nak what was fetched and never handed out, oldest first (the queue, then what the pumps still held), so
    that JetStream redelivers it at once and before newer events rather than after the ack wait."""
    msgs = []
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, Event):
            msgs.append(item._msg)  # noqa: SLF001 - this module's own event
    for msg in [*msgs, *unsent]:
        with suppress(Exception):  # the connection may be gone: then the ack wait brings it back
            await msg.nak()


async def _connect(login: Login, queue: asyncio.Queue[Event | BaseException]) -> NATS:
    """A connection that reconnects forever after a network failure, but not after a refusal: nats-py would try a
    refused first login for ever, and a refused reconnection (a rotated or deleted subscriber) ends the loop."""
    nc, connected = NATS(), asyncio.Event()

    async def _error(exc: Exception) -> None:
        if "authorization violation" not in str(exc).lower():
            return
        refused = PermissionError(f"NATS refused the login {login.user!r} (unknown, deleted, or its password changed)")
        if not connected.is_set():
            raise refused  # out of nats-py's first-connect loop
        await queue.put(refused)

    try:
        await nc.connect(login.url, user=login.user, password=login.password, max_reconnect_attempts=-1,
                         inbox_prefix=inbox_prefix(login.user), error_cb=_error)
    except BaseException:
        await nc.close()
        raise
    connected.set()
    return nc


async def _consumers(js: Any, plan: dict[str, list[str]], durable: str, *, bind: bool,
                     since: datetime | None) -> list[tuple[str, Any]]:
    """One pull subscription per stream: on the durable made here, or (bind) on the one that exists."""
    subs = []
    for stream, stream_subjects in plan.items():
        name = f"{durable}-{stream}"
        if bind:
            try:
                await js.consumer_info(stream, name)
            except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):  # a login not allowed to see it: no answer
                raise LookupError(f"no durable {name} on {stream} that this login may read: are these the subscriber's "
                                  "subjects and durable? (mlife subscribers list)") from None
        else:
            config = ConsumerConfig(durable_name=name, filter_subjects=stream_subjects, ack_policy=AckPolicy.EXPLICIT,
                                    deliver_policy=DeliverPolicy.BY_START_TIME if since else DeliverPolicy.ALL,
                                    opt_start_time=since)
            await js.add_consumer(stream, config)
        subs.append((f"{name} on {stream}", await js.pull_subscribe_bind(name, stream=stream)))
    return subs


GONE_TRIES = 10  # fetches, a second apart, that find no durable before it counts as deleted (a replay recreates it)


async def _fetch(sub: Any, name: str, batch: int, wait: float) -> list[Msg]:
    """The next batch; while the durable is missing (a gateway replay deletes and recreates it) it waits for it,
    and after GONE_TRIES it raises LookupError (the subscriber was deleted)."""
    for _ in range(GONE_TRIES):
        try:
            msgs: list[Msg] = await sub.fetch(batch, timeout=wait)
            return msgs
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either, by how the wait ended
            return []
        except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):  # no such consumer now
            await asyncio.sleep(1)
    raise LookupError(f"the durable {name} is gone (the subscriber was deleted?)")


async def _pump(sub: Any, name: str, queue: asyncio.Queue[Event | BaseException], batch: int, wait: float,
                versions: Mapping[str, int], unsent: list[Msg]) -> None:
    """Fetch and queue events until cancelled. The fetch runs shielded in a task of its own: nats-py's fetch loses
    the messages it already holds when it is cancelled, so a stop waits for the pull in flight (at most `wait`
    seconds) and keeps what it brought, with what was not queued yet, for `_give_back`."""
    pending: list[Msg] = []
    fetching: asyncio.Future[list[Msg]] | None = None
    try:
        while True:
            fetching = asyncio.ensure_future(_fetch(sub, name, batch, wait))
            pending = await asyncio.shield(fetching)
            fetching = None
            while pending:
                try:
                    event = _event(pending[0], versions)
                except (ValueError, KeyError, TypeError):  # no envelope
                    await pending.pop(0).term()  # never deliverable: skipped, as MLife's own consumers dead-letter it
                    continue
                await queue.put(event)
                pending.pop(0)
    except asyncio.CancelledError:
        unsent.extend(pending)
        if fetching is not None:
            with suppress(Exception):
                unsent.extend(await fetching)
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the caller's loop, which raises it
        await queue.put(exc)
