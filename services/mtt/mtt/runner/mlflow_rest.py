"""MLflow through its REST API (no `mlflow` package in MTT: the server runs from its own venv)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx


class MlflowError(Exception):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


def _object(value: Any, endpoint: str) -> dict[str, Any]:
    """A JSON object of MLflow's answer (a KeyError before, now an MlflowError that names the endpoint)."""
    if not isinstance(value, dict):
        raise MlflowError(f"{endpoint}: MLflow answered {type(value).__name__}, not the object expected")
    return value


class MlflowRest:
    def __init__(self, tracking_uri: str, *, timeout: float = 30.0, first_answer: float = 120.0) -> None:
        """`first_answer`: how long a read may wait. `mlife up` starts MLflow on the first connection to its port
        (idle memory, issue 17), so the first task's first call waits for MLflow's start, 14 s on a quiet
        2-core machine and longer under load; a connection or a write still times out after `timeout`."""
        self.base = tracking_uri.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base, timeout=httpx.Timeout(timeout, read=max(timeout, first_answer)))

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, endpoint: str, **kw: Any) -> dict[str, Any]:
        resp = await self.client.request(method, f"/api/2.0/mlflow/{endpoint}", **kw)
        if resp.status_code >= 400:
            raise MlflowError(f"{endpoint}: HTTP {resp.status_code}: {resp.text[:300]}")
        return _object(resp.json(), endpoint) if resp.content else {}

    async def experiment_id(self, name: str) -> str:
        resp = await self.client.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
        if resp.status_code == 200:
            return str(resp.json()["experiment"]["experiment_id"])
        try:
            return str((await self._call("POST", "experiments/create", json={"name": name}))["experiment_id"])
        except MlflowError:  # created concurrently by another runner
            resp = await self.client.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
            if resp.status_code != 200:
                raise
            return str(resp.json()["experiment"]["experiment_id"])

    async def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> dict[str, Any]:
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": now_ms(),
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        run = _object((await self._call("POST", "runs/create", json=body)).get("run"), "runs/create")
        return _object(run.get("info"), "runs/create")

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return _object((await self._call("GET", "runs/get", params={"run_id": run_id})).get("run"), "runs/get")

    async def log_batch(self, run_id: str, *, metrics: dict[str, float] | None = None,
                        params: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> None:
        ts = now_ms()
        body: dict[str, Any] = {"run_id": run_id,
                                "metrics": [{"key": k, "value": float(v), "timestamp": ts, "step": 0}
                                            for k, v in (metrics or {}).items()],
                                "params": [{"key": k[:250], "value": str(v)[:6000]} for k, v in (params or {}).items()],
                                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        # log-batch takes at most 1000 metrics / 100 params per call
        while body["metrics"] or body["params"] or body["tags"]:
            chunk = {"run_id": run_id, "metrics": body["metrics"][:1000], "params": body["params"][:100],
                     "tags": body["tags"][:100]}
            body["metrics"], body["params"] = body["metrics"][1000:], body["params"][100:]
            body["tags"] = body["tags"][100:]
            await self._call("POST", "runs/log-batch", json=chunk)

    async def log_records(self, run_id: str, *, metrics: list[dict[str, Any]] | None = None,
                          params: list[dict[str, str]] | None = None) -> None:
        """Metric records as logged (key, value, timestamp, step) and param records, in log-batch's chunks
        (1000 metrics, 100 params per call)."""
        metrics, params = list(metrics or []), list(params or [])
        for i in range(0, len(metrics), 1000):
            await self._call("POST", "runs/log-batch", json={"run_id": run_id, "metrics": metrics[i:i + 1000]})
        for i in range(0, len(params), 100):
            await self._call("POST", "runs/log-batch", json={"run_id": run_id, "params": params[i:i + 100]})

    async def log_inputs(self, run_id: str, datasets: list[dict[str, str]]) -> None:
        """datasets: name, digest, source, context (training/testing)."""
        body = {"run_id": run_id, "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": d["context"]}],
             "dataset": {"name": d["name"], "digest": d["digest"][:36], "source_type": "mlife-dam",
                         "source": d["source"]}} for d in datasets]}
        # Two runs logging the same dataset at once race on its insertion in the tracking store (HTTP 400
        # for the loser); the retry finds the row the winner wrote.
        for attempt in range(4):
            try:
                await self._call("POST", "runs/log-inputs", json=body)
                return
            except MlflowError:
                if attempt == 3:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def finish(self, run_id: str, status: str) -> None:
        await self._call("POST", "runs/update", json={"run_id": run_id, "status": status, "end_time": now_ms()})

    async def upload_artifact(self, artifact_uri: str, path: Path, name: str) -> None:
        """PUT to the server's artifact proxy (`mlflow-artifacts:/…` roots, the default of `mlflow server`)."""
        if not artifact_uri.startswith("mlflow-artifacts:"):
            raise MlflowError(f"artifact root {artifact_uri!r} is not served by the tracking server")
        rest = artifact_uri.split(":", 1)[1].lstrip("/")
        if artifact_uri.startswith("mlflow-artifacts://"):
            rest = rest.split("/", 1)[1] if "/" in rest else ""
        url = f"/api/2.0/mlflow-artifacts/artifacts/{quote(rest.strip('/'))}/{quote(name)}"
        with path.open("rb") as fh:
            resp = await self.client.put(url, content=fh.read())
        if resp.status_code >= 400:
            raise MlflowError(f"artifact upload {name}: HTTP {resp.status_code}: {resp.text[:300]}")


def run_url(ui_base: str, experiment_id: str | None, run_id: str | None) -> str | None:
    if not ui_base or not experiment_id or not run_id:
        return None
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
