"""The public event API watched through a whole demo run (issue 14, "done when"): before the loop starts, a
maintainer makes through the gateway

- a subscriber of every public event (`>`), whose login an outside process (`follower.py`) uses and nothing
  else; it is stopped in the middle of the run and started again;
- a webhook on badcase, dataset, task, deployment and alert events, received by a real HTTP server here and
  verified with the `standardwebhooks` package;
- an alert rule on a badcase surge, grouped by function, with e-mail to a real SMTP server (aiosmtpd).

After the run: the follower got every event the streams hold, each class of the run, in stream order per
subject; the webhook got signed deliveries of every kind it asked for; the surge of each function raised exactly
one grouped alert, by webhook and by e-mail (the demo names its functions per run, `digits-<run>`, so the rule
watches every function and groups by it: one alert per function, not one per badcase)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlife.events import Event, subscribe
from tests.support.distributed import Platform
from tests.support.smtp import Mailbox
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

WEBHOOK_SUBJECTS = ["badcase.*", "dataset.*", "task.*", "deployment.*", "alert.*"]


@dataclass
class Observers:
    platform: Platform
    api: httpx.AsyncClient
    receiver: Receiver
    mailbox: Mailbox
    out: Path
    login: dict[str, Any] = field(default_factory=dict)
    durable: str = ""
    hook: dict[str, Any] = field(default_factory=dict)
    rule: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0

    def start_follower(self) -> None:
        self.platform.start("follower", ["-m", "tests.e2e.follower", "--nats", self.login["nats_url"], "--user",
                                         self.login["nats_user"], f"--password={self.login['password']}",
                                         "--durable", self.durable, "--out", str(self.out)],
                            dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    def received(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    async def stop_and_restart_follower(self, after: int) -> None:
        """Once the follower has `after` events: SIGTERM, a pause while the run goes on, and a new start."""
        await wait_for(lambda: len(self.received()) >= after, 1200, f"{after} events at the follower")
        proc = self.platform.procs["follower"]
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, self.platform.log("follower")
        await asyncio.sleep(10)  # events published meanwhile wait in the durables
        self.start_follower()
        self.restarts += 1


async def _create(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(path, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return dict(r.json())


@asynccontextmanager
async def observers(platform: Platform, mailbox: Mailbox, tmp: Path) -> AsyncIterator[Observers]:
    async with httpx.AsyncClient(base_url=platform.url, timeout=60,
                                 headers={"Authorization": f"Bearer {platform.token}"}) as api:
        with Receiver() as receiver:
            obs = Observers(platform, api, receiver, mailbox, tmp / "follower.jsonl")
            sub = await _create(api, "/api/gateway/subscribers", {"name": "e2e-follower", "subjects": [">"]})
            obs.login, obs.durable = sub["credentials"], sub["durable"]
            obs.hook = await _create(api, "/api/gateway/webhooks", {"url": receiver.url, "subjects": WEBHOOK_SUBJECTS})
            obs.rule = await _create(api, "/api/gateway/alert-rules", {
                "name": "badcase surge", "kind": "badcase_surge", "function": None, "group_by": ["function"],
                "params": {"window_seconds": 3600, "baseline_windows": 1, "factor": 1, "min_count": 5},
                "group_wait_seconds": 0, "email_to": ["ops@example.org"]})
            obs.start_follower()
            yield obs


async def _everything_in_the_streams(platform: Platform) -> dict[str, dict[str, Any]]:
    """Every public event the streams hold, read with the read-only `reader` login on a durable of its own."""
    assert platform.nats is not None
    seen: dict[str, dict[str, Any]] = {}
    stream = subscribe(">", durable="e2e-audit", url=platform.nats.url, user="reader",
                       password=platform.nats.passwords["reader"], wait=1.0)
    try:
        while True:
            try:
                event: Event = await asyncio.wait_for(anext(stream), 15)
            except TimeoutError:
                return seen
            seen[event.id] = {"type": event.type, "stream": event.stream, "sequence": event.sequence}
            await event.ack()
    finally:
        await stream.aclose()


async def check_observers(obs: Observers, functions: list[str]) -> None:
    await _check_webhook_and_alert(obs, functions)  # first: the alert's own event is then in the streams for the follower
    await _check_follower(obs)


async def _check_follower(obs: Observers) -> None:
    everything = await _everything_in_the_streams(obs.platform)
    await wait_for(lambda: set(everything) <= {e["id"] for e in obs.received()}, 300,
                   "the follower to have every event of the streams")
    got = obs.received()
    assert obs.restarts == 1 and obs.platform.procs["follower"].poll() is None, obs.platform.log("follower")
    types = {e["type"] for e in everything.values()}
    assert {e["type"] for e in got} == types
    assert {"badcase.created", "badcase.test_data_requested", "dataset.grouped", "task.created", "task.finished",
            "testing.completed", "model.uploaded", "model.registered", "testing.requested", "deployment.requested",
            "deployment.succeeded", "deployment.blocked", "model.promoted", "model.alias_moved",
            "serving.feedback", "alert.firing"} <= types, types
    first: dict[str, dict[str, Any]] = {}
    for e in got:
        first.setdefault(e["id"], e)
    by_subject: dict[str, list[int]] = {}
    for e in first.values():  # in the order the follower first received them
        by_subject.setdefault(e["type"], []).append(e["sequence"])
    unordered = {s: seqs for s, seqs in by_subject.items() if seqs != sorted(seqs)}
    assert not unordered, f"events of one subject out of stream order: {unordered}"


async def _diagnosis(obs: Observers) -> str:
    """What the gateway says of the webhook, the alerts and its dead letters, and what arrived here."""
    parts = [f"webhook events received: {Counter(e['type'] for e in obs.receiver.events())}",
             f"mails: {obs.mailbox.subjects()}"]
    for path in (f"/api/gateway/webhooks/{obs.hook['id']}/deliveries?limit=5", "/api/gateway/alerts?status=all",
                 "/api/gateway/dead-letters?state=all"):
        r = await obs.api.get(path)
        parts.append(f"GET {path}: {r.status_code} {r.text[:1500]}")
    return "\n".join([*parts, obs.platform.log("gateway", 3000)])


async def _check_webhook_and_alert(obs: Observers, functions: list[str]) -> None:
    def firing() -> list[dict[str, Any]]:
        return [e for e in obs.receiver.events() if e["type"] == "alert.firing"
                and e["data"]["rule_id"] == obs.rule["id"]]

    def mails() -> list[str]:
        return [s for s in obs.mailbox.subjects() if obs.rule["name"] in s]

    def all_told() -> bool:
        return {e["data"]["function"] for e in firing()} >= set(functions) and len(mails()) >= len(functions)

    try:
        await wait_for(all_told, 120, "each function's surge alert by webhook and e-mail")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await _diagnosis(obs)}") from None
    verified = obs.receiver.verified(obs.hook["secret"])
    kinds = {e["type"].split(".")[0] for e in verified}
    assert kinds == {"badcase", "dataset", "task", "deployment", "alert"}, kinds
    assert sorted(e["data"]["function"] for e in firing()) == sorted(functions), firing()
    for function in functions:
        told = [m for m in mails() if f"function={function}" in m]
        assert len(told) == 1 and "firing" in told[0].lower(), obs.mailbox.subjects()
        alerts = (await obs.api.get("/api/gateway/alerts", params={"status": "all", "function": function})).json()
        mine = [a for a in alerts["items"] if a["rule_id"] == obs.rule["id"]]
        assert len(mine) == 1 and mine[0]["count"] >= 5, mine  # many badcases, one alert
