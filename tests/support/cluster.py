"""Faults under load on the cluster of scripts/cluster.py: a steady mixed workload through the load balancer,
every request's outcome with its start and end, the faults' windows, and the effects counted in the services'
databases against the producers' outboxes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import httpx
from PIL import Image

from scripts.cluster import Cluster
from tests.support.bam import report

SERVICE_DBS = ("bam", "dam", "mtt", "msm", "gateway")


@dataclass
class Call:
    """One request of the workload: what, when (time.monotonic()), and its status or the error it met."""

    kind: str
    start: float
    end: float
    status: int | None
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class Fault:
    """A fault: injected at `at`; `back` when what it broke runs again (the process restarted, the server
    accepting connections); `ready_s`: from `at` until the load balancer and every replica answer /readyz."""

    name: str
    at: float
    back: float
    outage: bool = False  # the whole of [at, back] is an outage (PostgreSQL down): requests in it may fail
    ready_s: float = 0.0

    def excuses(self, call: Call) -> bool:
        """A failed request this fault explains: in flight at the kill (started before it, ended after), or,
        for an outage, in flight at any moment of it."""
        if self.outage:
            return call.start <= self.back and call.end >= self.at
        return call.start <= self.at <= call.end


def noise_png() -> bytes:
    """A picture no other is near (random pixels): every report is a new badcase, never merged."""
    out = io.BytesIO()
    Image.frombytes("L", (32, 32), os.urandom(32 * 32)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Workload:
    """Loops through the load balancer. BAM's (`clients`): report a badcase with its picture (an upload to the
    object store, badcase.created), add it to the test data (badcase.test_data_requested → DAM appends the
    function's badcase test set and groups it → dataset.grouped → MTT and MSM), and every fifth round import two
    badcases (JSON lines). DAM's (one): upload a file, import a table document, group it into train and test
    (two dataset.grouped → MTT and MSM)."""

    client: httpx.AsyncClient
    clients: int = 2
    calls: list[Call] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # acknowledged add-to-test-data requests
    datasets: list[str] = field(default_factory=list)  # acknowledged grouped datasets
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _call(self, kind: str, path: str, **send: Any) -> httpx.Response | None:
        start = time.monotonic()
        try:
            response = await self.client.post(path, **send)
        except httpx.HTTPError as exc:
            self.calls.append(Call(kind, start, time.monotonic(), None, type(exc).__name__))
            return None
        self.calls.append(Call(kind, start, time.monotonic(), response.status_code,
                               response.text[:300] if response.status_code >= 300 else ""))
        return response

    async def _bam(self, n: int) -> None:
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            body = report(function=f"cluster-{n}", data=[], description="faults under load")
            r = await self._call("report", "/api/bam/badcases/with-data", data={"report": json.dumps(body)},
                                 files={"file": ("frame.png", noise_png(), "image/png")})
            if r is not None and r.status_code == 201:
                r = await self._call("add-to-test-data", "/api/bam/badcases/add-to-test-data",
                                     json={"ids": [r.json()["id"]]})
                if r is not None and r.status_code == 200:
                    self.request_ids += r.json()["request_ids"]
            if rounds % 5 == 0:
                rows = [report(function=f"cluster-{n}", data=[{"kind": "md5", "value": os.urandom(16).hex(),
                                                                "media_type": "image"}]) for _ in range(2)]
                await self._call("import", "/api/bam/badcases/import", headers={"content-type": "application/x-ndjson"},
                                 content="".join(json.dumps(row) + "\n" for row in rows))
            await asyncio.sleep(0.05)

    async def _dam(self) -> None:
        while not self.stop.is_set():
            name = f"cluster/{os.urandom(8).hex()}"
            await self._call("upload", "/api/dam/files", params={"name": name + ".png"}, content=noise_png())
            table = "x,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(8))
            r = await self._call("document", "/api/dam/documents", params={"name": name, "kind": "table"},
                                 headers={"content-type": "text/csv"}, content=table)
            if r is not None and r.status_code == 201:
                r = await self._call("group", "/api/dam/datasets", json={
                    "name": name, "documents": [{"id": r.json()["id"]}], "split": {"train": 0.5, "test": 0.5},
                    "stratify": False})
                if r is not None and r.status_code == 201:
                    self.datasets += [d["id"] for d in r.json()["datasets"]]
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        await asyncio.gather(*(self._bam(n) for n in range(self.clients)), self._dam())


async def measure_ready(cluster: Cluster, since: float, timeout: float = 180) -> float:
    """Seconds from `since` until the load balancer and every replica answer /readyz with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(code == 200 for code in (await cluster.readiness()).values()):
            return round(time.monotonic() - since, 2)
        await asyncio.sleep(0.2)
    raise AssertionError(f"not ready {timeout} s after the fault: {await cluster.readiness()}\n{cluster.logs()}")


async def query(cluster: Cluster, app: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(cluster.database_url(app, "postgresql").replace("postgresql://", "postgres://"))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def unpublished(cluster: Cluster) -> int:
    """Outbox rows of every service the relays have not published yet."""
    return sum([(await query(cluster, app, "SELECT count(*) FROM outbox WHERE published_at IS NULL"))[0][0]
                for app in SERVICE_DBS])


async def lag(cluster: Cluster) -> dict[str, int]:
    """Every consumer's num_pending + num_ack_pending, as its leader reports it (a consumer with lag only)."""
    out = {}
    for (stream, name), info in (await cluster.jsz()).items():
        behind = int(info.get("num_pending", 0)) + int(info.get("num_ack_pending", 0))
        if behind:
            out[f"{stream}/{name}"] = behind
    return out


async def effects(cluster: Cluster) -> dict[str, Any]:
    """Every event a producer's outbox holds, against its consumers' inboxes (each service consumer whose
    JetStream config filters one subject), and the DAM test set versions per add-to-test-data request (the
    effect with no unique key to stop a duplicate: a duplicate there would be a second version)."""
    lost: dict[str, int] = {}
    applied = 0
    for (stream, durable), info in (await cluster.jsz()).items():
        subject = (info.get("config") or {}).get("filter_subject")
        consumer_app = durable.split("-", 1)[0]
        if not subject or consumer_app not in SERVICE_DBS or not stream.startswith("MLIFE_"):
            continue
        producer = stream.removeprefix("MLIFE_").lower()
        if producer not in SERVICE_DBS:
            continue
        sent = {r[0] for r in await query(cluster, producer, "SELECT id FROM outbox WHERE subject = $1", subject)}
        done = {r[0] for r in await query(cluster, consumer_app, "SELECT event_id FROM inbox WHERE consumer = $1",
                                          durable)}
        applied += len(sent & done)
        if sent - done:
            lost[durable] = len(sent - done)
    requests = [r[0] for r in await query(cluster, "bam", "SELECT envelope->'data'->>'request_id' FROM outbox "
                                                          "WHERE subject = 'badcase.test_data_requested'")]
    versions = Counter(r[0] for r in await query(
        cluster, "dam", "SELECT substring(message from 'request ([0-9a-f-]+)') FROM document_version "
                        "WHERE created_by = 'bam'"))
    grouped = {r[0] for r in await query(cluster, "dam", "SELECT envelope->'data'->>'dataset_id' FROM outbox "
                                                         "WHERE subject = 'dataset.grouped'")}
    return {"events_applied": applied, "lost_by_consumer": lost, "datasets_grouped": grouped,
            "test_data_requests": len(requests),
            "test_data_lost": sum(1 for r in requests if versions[r] == 0),
            "test_data_duplicated": sum(versions[r] - 1 for r in requests if versions[r] > 1),
            "requests_in_outbox": set(requests)}


def table(faults: list[Fault], calls: list[Call], summary: dict[str, Any]) -> str:
    lines = [f"{'fault':44} {'ready (s)':>9} {'failed in flight':>16}"]
    for f in faults:
        lines.append(f"{f.name:44} {f.ready_s:9.2f} {sum(1 for c in calls if c.failed and f.excuses(c)):16d}")
    lines += [f"{k}: {v}" for k, v in summary.items() if k != "faults"]
    return "\n".join(lines)


def figures(faults: list[Fault], calls: list[Call], summary: dict[str, Any]) -> dict[str, Any]:
    """The summary and, per fault, its seconds since the load started (`at`, `back`), its recovery to ready and
    the failed requests it explains."""
    t0 = min((c.start for c in calls), default=0.0)
    return {**summary, "requests_by_kind": dict(Counter(c.kind for c in calls)),
            "failed_by_answer": dict(Counter(str(c.status or c.error) for c in calls if c.failed)),
            "faults": [{**asdict(f), "at": round(f.at - t0, 2), "back": round(f.back - t0, 2),
                        "failed_in_flight": sum(1 for c in calls if c.failed and f.excuses(c))} for f in faults]}
