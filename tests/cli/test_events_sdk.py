"""`mlife.events.subscribe` with only the `reader` login, against NATS configured as `mlife up` configures it:
`model.>` brings the model events of both streams that hold them (MTT's and MSM's) and nothing else, typed by
their contracts; a restarted subscriber resumes after what it acknowledged; `since` replays for a new one."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from mlife.events import Event, streams_for, subscribe
from mlife_shared.events import EventData, new_envelope, registry
from mlife_shared.events.contracts import BadcaseMerged, ModelRegistered, ModelUploaded
from mlife_shared.messaging import natsauth
from mlife_shared.messaging.bus import connect, provision_streams
from tests.support.nats import serve_nats
from tests.support.processes import free_port, stop


async def publish(url: str, passwords: dict[str, str], data: EventData) -> str:
    nc = await connect(url, name="producer", user=data.producer, password=passwords[data.producer])
    try:
        js = nc.jetstream()
        await provision_streams(js, producer=data.producer)
        envelope = new_envelope(data)
        await js.publish(envelope.type, envelope.model_dump_json().encode(), headers={"Nats-Msg-Id": str(envelope.id)})
        return str(envelope.id)
    finally:
        await nc.close()


async def take(n: int, url: str, password_file: Path, **kw: object) -> list[Event]:
    """The first `n` events of a subscription (acknowledged), then the subscriber stops."""
    got: list[Event] = []

    async def _run() -> None:  # closed when left (aclosing), as docs/subscribing.md shows
        async with aclosing(subscribe("model.>", url=url, password_file=password_file, wait=1, **kw)) as events:  # type: ignore[arg-type]
            async for event in events:
                await event.ack()
                got.append(event)
                if len(got) == n:
                    return

    await asyncio.wait_for(_run(), 30)
    return got


def uploaded() -> ModelUploaded:
    return ModelUploaded(task_id=uuid.uuid4(), model_name="digits-logreg", object_key="mtt/tasks/x/model.onnx",
                         format="onnx", md5="9e107d9d372bb6826bd81d3542a419d6", size=1024, function="digits")


def registered(version: str) -> ModelRegistered:
    return ModelRegistered(model_version_id=uuid.uuid4(), name="digits-logreg", version=version, format="onnx",
                           object_key="msm/models/digits-logreg/model.onnx")


def test_patterns_are_matched_against_the_contracts() -> None:
    plan = streams_for(["model.>"])
    assert set(plan) == {"MLIFE_MTT", "MLIFE_MSM"} and "model.uploaded" in plan["MLIFE_MTT"]
    with pytest.raises(ValueError, match="matches no MLife event"):
        streams_for(["modle.>"])


async def test_model_events_of_two_streams_resume_and_replay(tmp_path: Path) -> None:
    port = free_port()
    conf, passwords = natsauth.write_embedded_config(tmp_path / "nats", port=port)
    server = await serve_nats(tmp_path, port, ["-c", str(conf)])
    url, reader = f"nats://127.0.0.1:{port}", conf.parent / "reader.password"
    try:
        before = datetime.now(UTC)
        first = [await publish(url, passwords, uploaded()), await publish(url, passwords, registered("1"))]
        await publish(url, passwords, BadcaseMerged(badcase_id=uuid.uuid4(), occurrence_id=uuid.uuid4(), frequency=2))
        got = await take(2, url, reader, durable="acme")
        assert sorted(e.id for e in got) == sorted(first)
        assert {type(e.payload) for e in got} == {ModelUploaded, ModelRegistered}
        assert {e.stream for e in got} == {"MLIFE_MTT", "MLIFE_MSM"}

        nc = await connect(url, name="producer", user="msm", password=passwords["msm"])
        try:  # a message that is no envelope: skipped, and it does not stop the subscription
            await nc.jetstream().publish("model.registered", b"not an envelope")
        finally:
            await nc.close()
        later = await publish(url, passwords, registered("2"))
        (resumed,) = await take(1, url, reader, durable="acme")
        assert resumed.id == later and resumed.payload.version == "2"  # type: ignore[union-attr]

        replayed = await take(3, url, reader, durable="acme-replay", since=before)
        assert sorted(e.id for e in replayed) == sorted([*first, later])
    finally:
        stop([server.proc])


class ModelRegisteredV0(EventData):
    """Sent when a version was registered (an earlier shape, kept for this test: `model` and `number`)."""

    subject = "model.registered"
    producer = "msm"
    schema_version = 0
    model: str
    number: str


async def test_versions_pins_and_unknown_fields_and_what_a_stop_gives_back(tmp_path: Path) -> None:
    """`versions=` gets events downgraded to a pinned earlier version; a field this SDK does not know (a newer
    platform's) stays in `data` and out of the typed payload; leaving the loop gives back (naks) what was fetched
    and not handed out, so nothing waits for its ack wait and the next subscriber gets it first, in order."""
    port = free_port()
    conf, passwords = natsauth.write_embedded_config(tmp_path / "nats", port=port)
    server = await serve_nats(tmp_path, port, ["-c", str(conf)])
    url, reader = f"nats://127.0.0.1:{port}", conf.parent / "reader.password"
    registry.register_previous(ModelRegisteredV0, deprecated_on=date.today(), sunset=date.today() + timedelta(days=200),
                               downgrade=lambda v1: {"model": v1["name"], "number": v1["version"]})
    try:
        uploaded_id = await publish(url, passwords, uploaded())  # (MTT's stream, which `model.>` spans, exists)
        await publish(url, passwords, registered("1"))
        got = await take(2, url, reader, durable="pinned", versions={"model.registered": 0})
        (pinned,) = [e for e in got if e.type == "model.registered"]  # (no order across streams)
        assert pinned.version == 0 and pinned.payload == ModelRegisteredV0(model="digits-logreg", number="1")
        with pytest.raises(ValueError, match="has no version 7 served"):
            await take(1, url, reader, durable="pinned", versions={"model.registered": 7})
        with pytest.raises(ValueError, match="is no MLife event"):
            await take(1, url, reader, durable="pinned", versions={"model.registerd": 0})

        nc = await connect(url, name="producer", user="msm", password=passwords["msm"])
        try:  # a newer platform's event: one more (optional) field than this SDK's contract
            envelope = new_envelope(registered("2")).model_dump(mode="json")
            envelope["data"]["signed_by"] = "release-bot"
            await nc.jetstream().publish("model.registered", json.dumps(envelope).encode(),
                                         headers={"Nats-Msg-Id": envelope["id"]})
            for n in range(3, 33):
                await publish(url, passwords, registered(str(n)))
        finally:
            await nc.close()
        got = await take(3, url, reader, durable="typed")
        (newer,) = [e for e in got if "signed_by" in e.data]
        assert newer.data["signed_by"] == "release-bot" and isinstance(newer.payload, ModelRegistered)

        # A durable whose ack wait is an hour: what a stop left unacknowledged would come back only then.
        nc = await connect(url, name="setup", user="reader", password=reader.read_text().strip())
        try:
            for stream, subjects in streams_for(["model.>"]).items():
                await nc.jetstream().add_consumer(stream, ConsumerConfig(
                    durable_name=f"resumer-{stream}", filter_subjects=subjects, ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=3600))
        finally:
            await nc.close()
        first = await take(6, url, reader, durable="resumer", batch=20, bind=True)
        rest = await take(27, url, reader, durable="resumer", batch=20, bind=True)
        assert [e.sequence for e in first + rest if e.stream == "MLIFE_MSM"] == list(range(1, 33))
        assert uploaded_id in {e.id for e in first}
    finally:
        registry.PREVIOUS.pop(("model.registered", 0), None)
        stop([server.proc])
