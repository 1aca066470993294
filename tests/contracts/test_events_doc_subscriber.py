"""The subscriber docs/events.md shows, run as written: its code block, with only the `reader` login, against
an authenticated NATS exactly as `mlife up` configures it, gets an event BAM publishes — and, stopped and
started again, the next one without the first one twice (its durable consumer remembers where it was)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.events.contracts import TestDataItem as Item
from mlife_shared.messaging import natsauth
from mlife_shared.messaging.bus import connect, provision_streams
from tests.support.nats import serve_nats
from tests.support.processes import free_port, stop

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def documented_subscriber() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return code


def request(function: str) -> BadcaseTestDataRequested:
    item = Item(badcase_id=uuid.uuid4(), data_refs=["key:bam/data/x"], ground_truth="7", function=function)
    return BadcaseTestDataRequested(request_id=uuid.uuid4(), items=[item])


async def test_the_documented_subscriber_receives_events_with_the_reader_login(tmp_path: Path) -> None:
    port = free_port()
    conf, passwords = natsauth.write_embedded_config(tmp_path / "nats", port=port)  # what `mlife up` writes
    server = await serve_nats(tmp_path, port, ["-c", str(conf)])
    url = f"nats://127.0.0.1:{port}"
    bam = await connect(url, name="bam-test", user="bam", password=passwords["bam"])
    try:
        js = bam.jetstream()
        await provision_streams(js, producer="bam")
        received: list[dict[str, Any]] = []

        async def run_once(expected: int) -> None:
            namespace: dict[str, Any] = {"handle": lambda subject, data: received.append({"type": subject, **data})}
            exec(compile(documented_subscriber().replace("nats://127.0.0.1:4222", url), str(DOC), "exec"), namespace)
            follower = asyncio.create_task(namespace["follow"](passwords["reader"]))
            try:
                for _ in range(300):
                    if len(received) >= expected or follower.done():
                        break
                    await asyncio.sleep(0.05)
                if follower.done():
                    follower.result()  # the documented code failed: show why
                await asyncio.sleep(0.3)  # its ack goes out right after handle(); then it is stopped
            finally:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)

        first = new_envelope(request("digits"))
        await js.publish(first.type, first.model_dump_json().encode(), headers={"Nats-Msg-Id": str(first.id)})
        await run_once(1)
        await asyncio.sleep(5.5)  # stopped for a while: its last pull request (5 s, as documented) is over
        second = new_envelope(request("wine"))
        await js.publish(second.type, second.model_dump_json().encode(), headers={"Nats-Msg-Id": str(second.id)})
        await run_once(2)
        assert [(r["type"], r["items"][0]["function"]) for r in received] == [
            ("badcase.test_data_requested", "digits"), ("badcase.test_data_requested", "wine")]
    finally:
        await bam.close()
        stop([server.proc])
