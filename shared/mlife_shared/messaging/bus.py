"""NATS connection and JetStream provisioning: one stream per producing service, exact subjects."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from mlife_shared.events import streams
from mlife_shared.events.registry import stream_name

log = structlog.get_logger(__name__)

DUPLICATE_WINDOW_SECONDS = 15 * 60


def inbox_prefix(user: str) -> str:
    """Each NATS user has inboxes of its own: its permissions let it read its own replies only (a shared
    `_INBOX.>` would let any user read the JetStream answers and deliveries meant for the others)."""
    return f"_INBOX_{user}"


async def connect(url: str, *, name: str, connect_timeout: float = 2.0, user: str | None = None,
                  password: str | None = None) -> NATS:
    """A connection that keeps reconnecting forever: the outbox holds events while NATS is away. With
    `user`/`password` (ServiceSettings.nats_credentials()) it logs in as that user (natsauth)."""

    async def _disconnected() -> None:
        log.warning("nats_disconnected")

    async def _reconnected() -> None:
        log.info("nats_reconnected")

    async def _error(exc: Exception) -> None:
        # A permissions violation means this user's rights (natsauth) and the code disagree: say so loudly.
        if "permissions violation" in str(exc).lower():
            log.error("nats_permissions_violation", user=user, error=str(exc))
        else:
            log.debug("nats_error", error=str(exc))

    # A cluster is reached through any of its nodes: `url` may list them, comma-separated; the client fails over
    servers = [u.strip() for u in url.split(",") if u.strip()]
    auth: dict[str, Any] = {}
    if user:
        auth = {"user": user, "password": password or "", "inbox_prefix": inbox_prefix(user)}
    return await nats.connect(
        servers, name=name, connect_timeout=connect_timeout, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        allow_reconnect=True, disconnected_cb=_disconnected, reconnected_cb=_reconnected, error_cb=_error, **auth,
    )


async def connect_with_retry(url: str, *, name: str, stop: asyncio.Event | None = None, user: str | None = None,
                             password: str | None = None) -> NATS:
    delay = 0.2
    while True:
        try:
            return await connect(url, name=name, user=user, password=password)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            log.warning("nats_connect_failed", url=url, error=str(exc), retry_in=delay)
            if stop is not None and stop.is_set():
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def stream_config(name: str, subjects: list[str], *, max_age_days: float, replicas: int = 1) -> StreamConfig:
    """`replicas`: the nodes of a JetStream cluster that hold the stream (1 on one server; 3 in a cluster, so one
    node can go down); the consumers on it inherit it (their num_replicas stays 0)."""
    return StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 86400,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


async def provision_streams(js: JetStreamContext, *, max_age_days: float = 30.0, producer: str | None = None,
                            replicas: int = 1) -> dict[str, Any]:
    """Create or update the streams of the registry; safe to run from every worker at every start.

    A worker passes `producer` (its service): on the authenticated bus a service may create and update only
    its own stream (natsauth). A consumer that starts first waits for the producer's stream (ConsumerRunner
    retries), so the start order stays free. Without `producer`: every stream (tests, an open server). A stream
    whose replica count differs from `replicas` is scaled to it (JetStream moves the data)."""
    done: dict[str, Any] = {}
    for name, subjects in streams().items():
        if producer is not None and name != stream_name(producer):
            continue
        config = stream_config(name, subjects, max_age_days=max_age_days, replicas=replicas)
        try:
            info = await js.stream_info(name)
            if (sorted(info.config.subjects or []) != sorted(subjects) or info.config.max_age != config.max_age
                    or (info.config.num_replicas or 1) != replicas):
                await js.update_stream(config)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError:  # another replica of the worker created it meanwhile
                await js.stream_info(name)
        done[name] = subjects
    return done
