"""The runners' work queue: a JetStream stream internal to MTT (not a §2 event stream).

A run request is first a `mtt_run_request` row written in the same transaction as the task turning
`queued` (outbox-like: a rolled-back request leaves nothing, a committed one is never lost). Dispatchers
(every runner process runs one) publish pending rows with `Nats-Msg-Id` = the row id, so a row published
twice (crash between PubAck and marking) is stored once, then mark them published. Runners of a queue share
one durable pull consumer on a WorkQueue stream: each message goes to exactly one runner, and starting more
runner processes, on any machine, adds capacity."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from mlife_shared.db import Database, utcnow
from mlife_shared.messaging.bus import DUPLICATE_WINDOW_SECONDS
from mtt.config import Settings
from mtt.task.repository import TaskRepository


@dataclass(frozen=True)
class RunMessage:
    request_id: uuid.UUID
    task_id: uuid.UUID
    attempt: int

    def encode(self) -> bytes:
        return json.dumps({"request_id": str(self.request_id), "task_id": str(self.task_id),
                           "attempt": self.attempt}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RunMessage:
        d = json.loads(raw)
        return cls(uuid.UUID(d["request_id"]), uuid.UUID(d["task_id"]), int(d["attempt"]))


def subject(settings: Settings, queue: str) -> str:
    return f"{settings.runs_subject_prefix}.{queue}"


def durable(queue: str) -> str:
    return f"mtt-runners-{queue}"


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    config = StreamConfig(name=settings.runs_stream, subjects=[f"{settings.runs_subject_prefix}.>"],
                          retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                          duplicate_window=DUPLICATE_WINDOW_SECONDS, max_age=7 * 86400,
                          num_replicas=settings.nats_replicas)
    try:
        info = await js.stream_info(settings.runs_stream)
        if (info.config.num_replicas or 1) != settings.nats_replicas:  # scaled to the cluster's setting
            await js.update_stream(config)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:  # created concurrently
            await js.stream_info(settings.runs_stream)


async def ensure_consumer(js: JetStreamContext, settings: Settings, queue: str) -> None:
    config = ConsumerConfig(durable_name=durable(queue), ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=settings.ack_wait_seconds, max_deliver=10, max_ack_pending=10000,
                            filter_subject=subject(settings, queue))
    try:
        await js.consumer_info(settings.runs_stream, durable(queue))
    except NotFoundError:
        try:
            await js.add_consumer(settings.runs_stream, config)
        except BadRequestError:
            await js.consumer_info(settings.runs_stream, durable(queue))


async def dispatch_pending(db: Database, js: JetStreamContext, settings: Settings, *, limit: int = 100) -> int:
    """Publish committed run requests that are not yet on the queue; returns how many."""
    async with db.transaction() as session:
        rows = await TaskRepository(session).pending_run_requests(limit)
        for row in rows:
            msg = RunMessage(row.id, row.task_id, row.attempt)
            await js.publish(subject(settings, row.queue), msg.encode(), headers={"Nats-Msg-Id": str(row.id)})
            row.published_at = utcnow()
        return len(rows)
