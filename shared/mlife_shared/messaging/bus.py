"""NATS connection and JetStream provisioning: one stream per producing service, exact subjects."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from mlife_shared.events import streams

log = structlog.get_logger(__name__)

DUPLICATE_WINDOW_SECONDS = 15 * 60


async def connect(url: str, *, name: str, connect_timeout: float = 2.0) -> NATS:
    """A connection that keeps reconnecting forever: the outbox holds events while NATS is away."""

    async def _disconnected() -> None:
        log.warning("nats_disconnected")

    async def _reconnected() -> None:
        log.info("nats_reconnected")

    async def _error(exc: Exception) -> None:
        log.debug("nats_error", error=str(exc))

    return await nats.connect(
        url, name=name, connect_timeout=connect_timeout, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        allow_reconnect=True, disconnected_cb=_disconnected, reconnected_cb=_reconnected, error_cb=_error,
    )


async def connect_with_retry(url: str, *, name: str, stop: asyncio.Event | None = None) -> NATS:
    delay = 0.2
    while True:
        try:
            return await connect(url, name=name)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            log.warning("nats_connect_failed", url=url, error=str(exc), retry_in=delay)
            if stop is not None and stop.is_set():
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def stream_config(name: str, subjects: list[str], *, max_age_days: float) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 86400,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def provision_streams(js: JetStreamContext, *, max_age_days: float = 30.0) -> dict[str, Any]:
    """Create or update every stream of the registry; safe to run from every worker at every start."""
    done: dict[str, Any] = {}
    for name, subjects in streams().items():
        config = stream_config(name, subjects, max_age_days=max_age_days)
        try:
            info = await js.stream_info(name)
            if sorted(info.config.subjects or []) != sorted(subjects) or info.config.max_age != config.max_age:
                await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
        done[name] = subjects
    return done
