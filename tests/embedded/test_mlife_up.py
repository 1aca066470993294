"""The embedded default, for real: `mlife up` on SQLite, a local object folder and NATS from the
wheel; ready, merged OpenAPI, a clean stop with no orphan, and data kept across a restart."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import pytest

from tests.support.embedded import TOKEN, start, stop, wait_until_up
from tests.support.processes import alive, descendants, free_port


async def make_a_home_from_before_authentication(home: Path) -> str:
    """A home as `mlife up` left it before the bus had users: an open nats-server's JetStream store in
    home/nats holding an event. Returns that event's id."""
    from mlife_shared.messaging.bus import provision_streams

    port = free_port()
    (home / "nats").mkdir(parents=True)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port),
                             "-js", "-sd", str(home / "nats"), "-n", "mlife-embedded"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, max_reconnect_attempts=0)
                break
            except Exception:  # noqa: BLE001
                await asyncio.sleep(0.05)
        js = nc.jetstream()
        await provision_streams(js)
        old_id = "00000000-0000-4000-8000-000000000001"
        await js.publish("badcase.created", json.dumps({"id": old_id, "data": {}}).encode())
        await nc.close()
    finally:
        proc.terminate()
        proc.wait(15)
    return old_id


async def check_the_bus(home: Path, nats_port: int, base: str, old_id: str) -> None:
    """The embedded NATS refuses an anonymous client; under their own users the workers provisioned their
    streams and consumers, and BAM's relay publishes (a reader's consumer of its own sees badcase.created)."""
    url = f"nats://127.0.0.1:{nats_port}"
    with pytest.raises(Exception) as refused:
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=20)
    assert "authorization" in repr(refused.value).lower()
    folder = home / "nats"
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("nats.conf", "bam.password", "reader.password"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name

    def login(user: str) -> dict[str, str]:
        return {"user": user, "password": (folder / f"{user}.password").read_text().strip(),
                "inbox_prefix": f"_INBOX_{user}"}

    bam = await nats.connect(url, **login("bam"))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # the workers start beside the APIs: /readyz does not wait for their consumers
            try:
                await bam.jetstream().consumer_info("MLIFE_MSM", "bam-serving-feedback")
                break
            except Exception:  # noqa: BLE001
                assert asyncio.get_running_loop().time() < deadline, "BAM's worker made no consumer"
                await asyncio.sleep(0.2)
    finally:
        await bam.close()
    reader = await nats.connect(url, **login("reader"))
    try:
        rjs = reader.jetstream()
        psub = await rjs.pull_subscribe("badcase.created", durable="smoke-reader", stream="MLIFE_BAM")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            r = await c.post("/api/bam/badcases", json={"function": "smoke", "prediction": "a", "ground_truth": "b"})
            assert r.status_code == 201, r.text
        msgs = await psub.fetch(2, timeout=30)
        if len(msgs) < 2:
            msgs += await psub.fetch(1, timeout=30)
        assert json.loads(msgs[0].data)["id"] == old_id, "the stream of the home from before is kept"
        assert json.loads(msgs[1].data)["data"]["badcase_id"] == r.json()["id"]
    finally:
        await reader.close()
    await check_a_subscriber_login(url, base)


async def check_a_subscriber_login(url: str, base: str) -> None:
    """mlife up hands the gateway the auth callout's issuer: a subscriber made through the gateway logs in to the
    embedded NATS with its own credentials and reads its durable."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = await c.post("/api/gateway/subscribers", json={"name": "smoke", "subjects": ["badcase.created"]})
        assert r.status_code == 201, r.text
    creds = r.json()["credentials"]
    sub = await nats.connect(url, user=creds["nats_user"], password=creds["password"], allow_reconnect=False,
                             inbox_prefix=f"_INBOX_{creds['nats_user']}")
    try:
        info = await sub.jetstream().consumer_info("MLIFE_BAM", "sub-smoke-MLIFE_BAM")
        assert info.num_pending >= 2  # the event of the home from before and the badcase just filed
    finally:
        await sub.close()


def test_mlife_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    home, port, log, nats_port = tmp_path / "home", free_port(), [], free_port()
    old_id = asyncio.run(make_a_home_from_before_authentication(home))
    proc = start(home, port, log, nats_port)
    try:
        wait_until_up(proc, log)
        children = descendants(proc.pid)
        assert len(children) >= 6, "nats + 4 services (api and worker) + gateway"
        base = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        assert ready["status"] == "ok", ready
        assert {"bam", "dam", "mtt", "msm", "nats", "database"} <= set(ready["checks"])
        paths = httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        for svc in ("bam", "dam", "mtt", "msm"):
            assert f"/api/{svc}/healthz" in paths, svc
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/api/dam/dead-letters", headers=auth, timeout=10).status_code == 200
        assert httpx.get(f"{base}/api/dam/dead-letters", timeout=10).status_code == 401
        assert re.search(r"MLife is up at http://127\.0\.0\.1:\d+", "".join(log))
        asyncio.run(check_the_bus(home, nats_port, base, old_id))
        assert f"password in {home / 'nats' / 'reader.password'}" in "".join(log)
        assert "nats_permissions_violation" not in "".join(log), "a service did something its NATS user may not"
    finally:
        code = stop(proc)
    assert code == 0, "".join(log[-40:])
    left = [pid for pid in children if alive(pid)]
    assert not left, f"orphans after stop: {left}"
    assert (home / "bam.db").exists() and (home / "nats" / "jetstream").exists()

    log2: list[str] = []
    proc2 = start(home, port, log2)
    try:
        wait_until_up(proc2, log2)
        me = httpx.get(f"http://127.0.0.1:{port}/api/gateway/me", headers={"Authorization": f"Bearer {TOKEN}"},
                       timeout=10)
        assert me.status_code == 200 and me.json()["username"] == "admin"
        assert not any("admin user was created" in line for line in log2), "the admin is created once"
    finally:
        assert stop(proc2) == 0
