"""Faults under load on the cluster of scripts/cluster.py: a steady mixed workload through the load balancer,
every request's outcome with its start and end, the faults' windows, and the effects counted in the services'
databases against the producers' outboxes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import httpx
from PIL import Image

from scripts.cluster import Cluster
from tests.msm.onnx_models import identity_classifier
from tests.support.bam import report
from tests.support.waiting import wait_for

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
        for an outage, in flight at any moment of it or of the recovery after it, until every replica is ready
        again: a process whose pooled database connections were cut meets the cut once, on its next request
        (a 503 with Retry-After; `after_back` counts those)."""
        if self.outage:
            return call.start <= max(self.back, self.at + self.ready_s) and call.end >= self.at
        return call.start <= self.at <= call.end

    def after_back(self, call: Call) -> bool:
        """An outage's failed request that started after the server was back."""
        return self.outage and call.start > self.back and self.excuses(call)


def noise_png() -> bytes:
    """A picture no other is near (random pixels): every report is a new badcase, never merged."""
    out = io.BytesIO()
    Image.frombytes("L", (32, 32), os.urandom(32 * 32)).save(out, format="PNG")
    return out.getvalue()


SERVE = "cluster-serve"  # the model, its function and its deployment
FINAL_TASK = ("succeeded", "failed", "cancelled")
DECIDED = ("live", "superseded", "failed", "blocked", "rolled_back")


@dataclass
class Serving:
    """What the prediction, testing and deployment clients use: an identity classifier (class = argmax of four
    features) uploaded to MSM, live on deployment `cluster-serve`, and a DAM test split of one-hot rows labelled
    with the next class (every sample a misprediction: a testing task files each as a badcase occurrence)."""

    version_id: str
    test_dataset_id: str
    test_items: int
    deployment_id: str
    first_task: str


def _ok(r: httpx.Response, *codes: int) -> dict[str, Any]:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return dict(r.json())


async def set_up_serving(client: httpx.AsyncClient) -> Serving:
    """Before the load: the model registered and deployed (live and answering), the test split grouped, and
    one testing task accepted (MTT has seen the model and the dataset)."""
    rows = "".join(f"{','.join('1' if j == i % 4 else '0' for j in range(4))},{(i + 1) % 4}\n" for i in range(8))
    doc = _ok(await client.post("/api/dam/documents", params={"name": SERVE, "kind": "table"},
                                headers={"content-type": "text/csv"}, content="f0,f1,f2,f3,label\n" + rows))
    grouped = _ok(await client.post("/api/dam/datasets", json={
        "name": SERVE, "documents": [{"id": doc["id"]}], "split": {"train": 0.5, "test": 0.5}, "stratify": False}))
    test = next(d for d in grouped["datasets"] if d["purpose"] == "test")
    version = _ok(await client.post(f"/api/msm/models/{SERVE}/versions", content=identity_classifier(4),
                                    headers={"content-type": "application/octet-stream"}))
    _ok(await client.patch(f"/api/msm/models/{SERVE}", json={"function": SERVE}))
    deployment = _ok(await client.post("/api/msm/deployments", json=deploy_body(version["id"])), 201, 202)

    async def live() -> bool:
        return _ok(await client.get(f"/api/msm/deployments/{deployment['id']}"))["status"] == "live" and \
            (await client.post(f"/api/msm/serve/{SERVE}/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).is_success

    await wait_for(live, 180, f"deployment {deployment['id']} live and answering")
    serving = Serving(version["id"], str(test["id"]), int(test["item_count"]), deployment["id"], "")

    async def accepted() -> str | None:
        r = await client.post("/api/mtt/tasks", json=testing_task_body(serving))
        return str(r.json()["id"]) if r.status_code == 201 else None

    serving.first_task = await wait_for(accepted, 180, "MTT accepting a testing task (model and dataset known)")
    return serving


def deploy_body(version_id: str) -> dict[str, Any]:
    """The model has no test split (its testing tasks are the workload's): the gate, which would block it for
    having nothing to be tested on, is overridden with a reason (the admin is a maintainer)."""
    return {"name": SERVE, "versions": [{"model_version_id": version_id}],
            "override_reason": "cluster fault test: a version with no test split"}


def testing_task_body(serving: Serving) -> dict[str, Any]:
    """A testing task with the built-in ONNX evaluator on the test split, queued at once."""
    return {"kind": "test", "datasets": [{"dataset_id": serving.test_dataset_id, "purpose": "test"}],
            "model_name": SERVE, "run": True,
            "params": {"preprocess": {"kind": "table", "columns": ["f0", "f1", "f2", "f3"],
                                      "classes": ["0", "1", "2", "3"]}}}


TRAIN_PY = "import json\nprint(json.dumps({'loss': 0.5}))\n"  # ends at once; its outcome is MTT's to tell


def training_task(serving: Serving) -> dict[str, Any]:
    """A training task with a tiny train.py uploaded with it (the multipart `task` + `code` zip), queued at once."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("train.py", TRAIN_PY)
    body = {"kind": "train", "datasets": [{"dataset_id": serving.test_dataset_id, "purpose": "train"}],
            "command": "python train.py", "run": True}
    return {"files": {"task": (None, json.dumps(body), "application/json"),
                      "code": ("code.zip", archive.getvalue(), "application/zip")}}


@dataclass
class Workload:
    """Loops through the load balancer. BAM's (`clients`): report a badcase with its picture (an upload to the
    object store, badcase.created), add it to the test data (badcase.test_data_requested → DAM appends the
    function's badcase test set and groups it → dataset.grouped → MTT and MSM), and every fifth round import two
    badcases (JSON lines). DAM's (one): upload a file, import a table document, group it into train and test
    (two dataset.grouped → MTT and MSM). With `serving`: two clients call predictions, one submits testing tasks
    (waiting for each to end) and one requests deployments of the live version."""

    client: httpx.AsyncClient
    clients: int = 2
    serving: Serving | None = None
    calls: list[Call] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # acknowledged add-to-test-data requests
    datasets: list[str] = field(default_factory=list)  # acknowledged grouped datasets
    tasks: list[str] = field(default_factory=list)  # acknowledged testing tasks
    trainings: list[str] = field(default_factory=list)  # acknowledged training tasks
    deployments: list[str] = field(default_factory=list)  # acknowledged deployment requests
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

    async def _predict(self, n: int) -> None:
        while not self.stop.is_set():
            await self._call("predict", f"/api/msm/serve/{SERVE}/predict",
                             json={"inputs": {"x": [1 if j == n % 4 else 0 for j in range(4)]}, "client_id": "cluster"})
            n += 1
            await asyncio.sleep(0.2)

    async def _final(self, task_id: str) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(0.5)
            try:
                if (await self.client.get(f"/api/mtt/tasks/{task_id}")).json().get("status") in FINAL_TASK:
                    return
            except (httpx.HTTPError, ValueError):
                pass  # a fault: ask again

    async def _test(self, serving: Serving) -> None:
        while not self.stop.is_set():
            r = await self._call("testing-task", "/api/mtt/tasks", json=testing_task_body(serving))
            if r is not None and r.status_code == 201:
                self.tasks.append(str(r.json()["id"]))
                await self._final(self.tasks[-1])
            await asyncio.sleep(0.5)

    async def _train(self, serving: Serving) -> None:
        while not self.stop.is_set():
            r = await self._call("training-task", "/api/mtt/tasks", **training_task(serving))
            if r is not None and r.status_code == 201:
                self.trainings.append(str(r.json()["id"]))
                await self._final(self.trainings[-1])
            await asyncio.sleep(1)

    async def _deploy(self, serving: Serving) -> None:
        while not self.stop.is_set():
            r = await self._call("deployment", "/api/msm/deployments", json=deploy_body(serving.version_id))
            if r is not None and r.status_code in (201, 202):
                self.deployments.append(str(r.json()["id"]))
            elif r is not None and r.status_code == 409:  # blocked by the gate: decided, and kept
                self.deployments.append(str(r.json()["detail"]["deployment_id"]))
            await asyncio.sleep(3)

    async def run(self) -> None:
        extra = [self._predict(0), self._predict(1), self._test(self.serving), self._train(self.serving),
                 self._deploy(self.serving)] \
            if self.serving else []
        await asyncio.gather(*(self._bam(n) for n in range(self.clients)), self._dam(), *extra)


async def serving_effects(cluster: Cluster, load: Workload) -> dict[str, Any]:
    """The acknowledged testing tasks and deployment requests: each task ended (its status, and its
    task.finished/task.failed and testing.completed/testing.failed events in MTT's outbox: one each), each of its
    mispredictions a badcase occurrence in BAM once; each deployment decided (its status, and one
    deployment.succeeded/failed in MSM's outbox unless the gate blocked it)."""
    assert load.serving is not None
    tasks = [load.serving.first_task, *load.tasks]
    status = dict(await query(cluster, "mtt", "SELECT id::text, status FROM mtt_task WHERE id::text = ANY($1)",
                              tasks + load.trainings))
    ended = Counter(r[0] for r in await query(
        cluster, "mtt", "SELECT envelope->'data'->>'task_id' FROM outbox WHERE subject IN ('task.finished', "
                        "'task.failed')"))
    tested = Counter(r[0] for r in await query(
        cluster, "mtt", "SELECT envelope->'data'->>'task_id' FROM outbox WHERE subject IN ('testing.completed', "
                        "'testing.failed')"))
    filed = dict(await query(cluster, "bam", "SELECT task_id::text, count(*) FROM occurrence WHERE task_id::text = "
                                             "ANY($1) GROUP BY task_id", tasks))
    decided = dict(await query(cluster, "msm", "SELECT id::text, status FROM deployment WHERE id::text = ANY($1)",
                               load.deployments))
    outcome = Counter(r[0] for r in await query(
        cluster, "msm", "SELECT envelope->'data'->>'deployment_id' FROM outbox WHERE subject IN "
                        "('deployment.succeeded', 'deployment.failed')"))
    return {"testing_tasks": len(tasks), "tasks_by_status": dict(Counter(status.get(t, "missing") for t in tasks)),
            "tasks_not_ended_once": [t for t in tasks if (ended[t], tested[t]) != (1, 1)],
            # a succeeded task filed each misprediction once (a failed one files none)
            "tasks_misfiled": {t: filed.get(t, 0) for t in tasks
                               if status.get(t) == "succeeded" and filed.get(t, 0) != load.serving.test_items},
            "training_tasks": len(load.trainings),
            "trainings_by_status": dict(Counter(status.get(t, "missing") for t in load.trainings)),
            "trainings_not_ended_once": [t for t in load.trainings if ended[t] != 1],
            "deployment_requests": len(load.deployments),
            "deployments_by_status": dict(Counter(decided.get(d, "missing") for d in load.deployments)),
            "deployments_not_decided_once": [d for d in load.deployments
                                             if decided.get(d) not in DECIDED or outcome[d] != int(decided[d] != "blocked")]}


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


async def outbox_rows(cluster: Cluster) -> tuple[int, int]:
    """(rows, rows not published yet) of every service's outbox."""
    counts = [(await query(cluster, app, "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"))[0]
              for app in SERVICE_DBS]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


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
    why: dict[str, Any] = {}  # per consumer with a loss: a few of the events lost, and their dead letters if any
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
            missing = [str(e) for e in sorted(sent - done)[:5]]
            letters = await query(cluster, consumer_app, "SELECT event_id, reason, deliveries, left(error, 300) "
                                                         "FROM dead_letter WHERE event_id = ANY($1::text[])", missing)
            why[durable] = {"events": missing, "dead_letters": [tuple(r) for r in letters]}
    requests = [r[0] for r in await query(cluster, "bam", "SELECT envelope->'data'->>'request_id' FROM outbox "
                                                          "WHERE subject = 'badcase.test_data_requested'")]
    versions = Counter(r[0] for r in await query(
        cluster, "dam", "SELECT substring(message from 'request ([0-9a-f-]+)') FROM document_version "
                        "WHERE created_by = 'bam'"))
    grouped = {r[0] for r in await query(cluster, "dam", "SELECT envelope->'data'->>'dataset_id' FROM outbox "
                                                         "WHERE subject = 'dataset.grouped'")}
    return {"events_applied": applied, "lost_by_consumer": lost, "lost_detail": why, "datasets_grouped": grouped,
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
                        "failed_in_flight": sum(1 for c in calls if c.failed and f.excuses(c)),
                        "failed_after_back": sum(1 for c in calls if c.failed and f.after_back(c))} for f in faults]}
