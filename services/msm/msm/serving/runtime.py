"""Where predictions run: the API process. Deployments are read from the database (cached for
`serving_refresh_seconds`), their ONNX versions loaded into onnxruntime on first use and kept per
version; concurrent requests to one version are micro-batched into one `session.run`.

In the embedded mode (`python -m msm all`) the deployer and the API share a process; when split, the
worker's deployer only proves that every version loads and marks the deployment live, and each API
replica loads the versions itself on the first request — so any number of API replicas serve, and a
rollback is seen by all within the refresh time. A version that no live deployment uses any more is
unloaded once it was idle for `serving_unload_idle_seconds`."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlife_shared.db import Database
from mlife_shared.errors import Conflict, NotFound
from mlife_shared.objectstore import ObjectStore
from msm.config import Settings
from msm.deployment.repository import DeploymentRepository
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.registry.service import download


class DeploymentNotServing(NotFound):
    """No live deployment by that name or id."""


@dataclass(frozen=True)
class VersionView:
    id: uuid.UUID
    name: str
    version: str
    object_key: str
    signature: dict[str, Any]
    weight: float
    role: str


@dataclass
class DeploymentView:
    id: uuid.UUID
    name: str
    function: str | None
    target: str
    status: str
    primaries: list[VersionView]
    shadows: list[VersionView]
    loaded_at: float = field(default_factory=time.monotonic)

    def pick(self) -> VersionView:
        if len(self.primaries) == 1:
            return self.primaries[0]
        return random.choices(self.primaries, weights=[v.weight for v in self.primaries])[0]

    def version(self, version_id: uuid.UUID) -> VersionView | None:
        return next((v for v in self.primaries + self.shadows if v.id == version_id), None)


# One queued request: its feeds, its row count, and the future its outputs go to.
_Request = tuple[dict[str, np.ndarray], int, "asyncio.Future[list[np.ndarray]]"]


class Batcher:
    """Requests to one session queue here; one loop drains the queue into batches of up to `max_rows`
    rows, concatenated along the batch axis, run once, and split back."""

    def __init__(self, session: Any, batchable: bool, max_rows: int, wait_ms: float, *, inline: bool = False) -> None:
        self.session = session
        self.batchable = batchable
        # A model that runs in microseconds is run on the event loop: handing it to a thread costs more.
        self.inline = inline
        self.max_rows = max_rows
        self.wait = wait_ms / 1000.0
        self.queue: asyncio.Queue[_Request | None] = asyncio.Queue()  # None: retire() asks the loop to end
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort")
        self.task: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0
        self.retired = False

    async def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())
        future: asyncio.Future[list[np.ndarray]] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((feeds, next(iter(feeds.values())).shape[0], future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            if first is None:  # retire(): end once nothing is waiting
                if self.queue.empty():
                    return
                continue
            items = [first]
            rows = first[1]
            if self.batchable:
                if self.wait and self.queue.empty():
                    await asyncio.sleep(self.wait)
                while rows < self.max_rows and not self.queue.empty():
                    nxt = self.queue.get_nowait()
                    if nxt is not None:
                        items.append(nxt)
                        rows += nxt[1]
            for group in _compatible(items) if len(items) > 1 else [items]:
                await self._run_group(loop, group)
            if self.retired and self.queue.empty():
                return

    def retire(self) -> None:
        """Stop the loop once every queued request was answered; a late request starts it again. Never
        cancels a run in flight (its waiters would never be answered)."""
        self.retired = True
        if self.task is not None and not self.task.done():
            self.queue.put_nowait(None)

    async def _run_group(self, loop: asyncio.AbstractEventLoop, group: list[_Request]) -> None:
        try:
            if len(group) == 1:
                feeds = group[0][0]
            else:
                feeds = {k: np.concatenate([g[0][k] for g in group]) for k in group[0][0]}
            if self.inline:
                outputs = self.session.run(None, feeds)
            else:
                outputs = await loop.run_in_executor(self.executor, self.session.run, None, feeds)
            self.batches += 1
            self.rows += sum(g[1] for g in group)
        except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for _, rows, future in group:
            if not future.done():
                future.set_result([o[start:start + rows] if len(group) > 1 else o for o in outputs])
            start += rows

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_time_us(session: Any, signature: dict[str, Any]) -> float:
    """Median time of a one-row run on zeros (inf when the signature has no fixed feature shape)."""
    feeds = {}
    for spec in signature.get("inputs", []):
        shape = [d if isinstance(d, int) else 1 for d in spec["shape"]]
        if spec["dtype"].startswith("onnx:") or any(not isinstance(d, int) for d in spec["shape"][1:]):
            return float("inf")
        feeds[spec["name"]] = np.zeros(shape, dtype=np.dtype(spec["dtype"]))
    try:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
    except Exception:  # noqa: BLE001 - a model that needs real data is simply not run inline
        return float("inf")
    return float(np.median(times) * 1e6)


def _compatible(items: list[_Request]) -> list[list[_Request]]:
    """Group requests whose inputs agree on every axis but the first (symbolic dims may differ)."""
    groups: dict[tuple[Any, ...], list[_Request]] = {}
    for item in items:
        key = tuple((k, v.shape[1:]) for k, v in sorted(item[0].items()))
        groups.setdefault(key, []).append(item)
    return list(groups.values())


@dataclass
class LoadedModel:
    version: VersionView
    session: Any
    batcher: Batcher
    output_names: list[str]


class Latency:
    def __init__(self, size: int = 10_000) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.count = 0
        self.histogram: Any = None  # the Prometheus histogram's child of this deployment and version

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1

    def summary(self) -> dict[str, float | int]:
        if not self.samples:
            return {"count": self.count}
        values = np.asarray(self.samples) * 1000
        return {"count": self.count, "p50_ms": float(np.percentile(values, 50)),
                "p90_ms": float(np.percentile(values, 90)), "p99_ms": float(np.percentile(values, 99)),
                "mean_ms": float(values.mean())}


class ServingRegistry:
    def __init__(self, db: Database, settings: Settings, store: ObjectStore) -> None:
        self.db = db
        self.settings = settings
        self.store = store
        self.cache_dir = Path(settings.home) / "serving-cache"
        self.views: dict[str, DeploymentView] = {}
        self.refreshing: set[str] = set()
        self.last_used: dict[uuid.UUID, float] = {}
        self.models: dict[uuid.UUID, LoadedModel] = {}
        self.locks: dict[uuid.UUID, asyncio.Lock] = {}
        self.latency: dict[tuple[str, str], Latency] = {}
        self.threads = settings.intra_op_threads or os.cpu_count() or 1
        self.background: set[asyncio.Task[Any]] = set()
        self.histogram: Any = None
        self.identities: dict[str, tuple[float, Any]] = {}  # verified identity tokens until they expire

    async def resolve(self, ref: str, *, live_only: bool = True) -> DeploymentView:
        view = self.views.get(ref)
        age = time.monotonic() - view.loaded_at if view is not None else 0.0
        if view is None:
            view = await self._refresh(ref)
        elif age >= 3 * self.settings.serving_refresh_seconds + 2:
            # Too old to answer from (idle since): a deployment switched or rolled back meanwhile must not get
            # one more request on the old version. Read it now; on a database error keep the last known state.
            fresh = await self._refresh(ref, quiet=True)
            view = fresh if fresh is not None or ref not in self.views else view
        elif age >= self.settings.serving_refresh_seconds:
            # Stale: answer from it while one background read refreshes it, so that a burst of
            # requests never queues on the database (SQLite serialises them) when the cache expires.
            if ref not in self.refreshing:
                self.refreshing.add(ref)
                self.spawn(self._refresh(ref, quiet=True))
        if view is None:
            raise DeploymentNotServing(f"no live deployment {ref!r}")
        if live_only and view.status != "live":
            raise DeploymentNotServing(f"deployment {ref!r} is {view.status}, not live")
        if view.target != "local":
            raise Conflict(f"deployment {ref!r} targets {view.target}; only local deployments are served here")
        return view

    async def _refresh(self, ref: str, *, quiet: bool = False) -> DeploymentView | None:
        try:
            view = await self._read(ref)
        except Exception:
            if quiet:  # keep serving the last known state; the next request tries again
                return None
            raise
        finally:
            self.refreshing.discard(ref)
        if view is None:
            self.views.pop(ref, None)
        else:
            self.views[ref] = view
        self.prune()
        return view

    def prune(self) -> list[uuid.UUID]:
        """Unload versions that no cached live deployment uses and nobody asked for in a while."""
        now, idle = time.monotonic(), self.settings.serving_unload_idle_seconds
        used = {v.id for view in self.views.values() if view.status == "live" for v in view.primaries + view.shadows}
        dropped = [vid for vid in self.models if vid not in used and now - self.last_used.get(vid, 0.0) >= idle]
        for vid in dropped:
            self.models.pop(vid).batcher.retire()
            self.last_used.pop(vid, None)
            (self.cache_dir / f"{vid}.onnx").unlink(missing_ok=True)
        return dropped

    async def _read(self, ref: str) -> DeploymentView | None:
        async with self.db.transaction() as session:
            repo = DeploymentRepository(session)
            try:
                deployment = await repo.deployment(uuid.UUID(ref))
            except ValueError:
                deployment = await repo.live_by_name(ref)
            if deployment is None:
                return None
            ids = [uuid.UUID(v["model_version_id"]) for v in deployment.versions]
            rows: dict[uuid.UUID, ModelVersion] = await RegistryRepository(session).versions(ids)
            views = [VersionView(id=i, name=rows[i].name, version=rows[i].version, object_key=rows[i].object_key,
                                 signature=rows[i].signature, weight=float(v["weight"]), role=v["role"])
                     for i, v in zip(ids, deployment.versions, strict=True)]
            return DeploymentView(id=deployment.id, name=deployment.name, function=deployment.function,
                                  target=deployment.target, status=deployment.status,
                                  primaries=[v for v in views if v.role == "primary"],
                                  shadows=[v for v in views if v.role == "shadow"])

    async def model(self, version: VersionView) -> LoadedModel:
        self.last_used[version.id] = time.monotonic()
        loaded = self.models.get(version.id)
        if loaded is not None:
            return loaded
        lock = self.locks.setdefault(version.id, asyncio.Lock())
        async with lock:
            if version.id not in self.models:
                self.models[version.id] = await self._load(version)
        return self.models[version.id]

    async def _load(self, version: VersionView) -> LoadedModel:

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{version.id}.onnx"
        if not path.exists():
            partial = path.with_suffix(f".{uuid.uuid4().hex}.part")
            await download(self.store, version.object_key, partial)
            os.replace(partial, path)
        session = await asyncio.to_thread(self._session, path, self.threads)
        inputs = version.signature.get("inputs", [])
        outputs = version.signature.get("outputs", [])
        batchable = bool(inputs) and all(t["shape"] and not isinstance(t["shape"][0], int)
                                         for t in inputs + outputs)
        inline = await asyncio.to_thread(_run_time_us, session, version.signature) <= self.settings.inline_run_us
        if inline and self.threads > 1:
            # A model this small runs on the event loop single-threaded: waking onnxruntime's intra-op pool for
            # each run (its threads sleep, spinning is off) costs more than its ops, and competes for the cores.
            session = await asyncio.to_thread(self._session, path, 1)
        batcher = Batcher(session, batchable, self.settings.max_batch_size, self.settings.batch_wait_ms,
                          inline=inline)
        return LoadedModel(version, session, batcher, [o.name for o in session.get_outputs()])

    def _session(self, path: Path, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not self.settings.ort_allow_spinning:
            # Idle intra-op threads otherwise busy-wait for work and take the cores the event loop
            # (HTTP parsing, JSON, validation) needs between runs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def record(self, deployment: str, version: str, seconds: float) -> None:
        key = (deployment, version)
        latency = self.latency.get(key)
        if latency is None:
            latency = self.latency[key] = Latency()
            # `labels()` locks and builds the key on every call: each pair's child is kept with its latencies
            latency.histogram = None if self.histogram is None else self.histogram.labels(deployment, version)
        latency.add(seconds)
        if latency.histogram is not None:
            latency.histogram.observe(seconds)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        for loaded in self.models.values():
            loaded.batcher.close()
        self.models.clear()
