"""Predict: validated, micro-batched, A/B by weight, shadowed, sampled into the prediction log."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from mlife_shared.ids import random_uuid
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate
from msm.serving.runtime import DeploymentView, ServingRegistry, VersionView
from msm.serving.validation import to_arrays, to_json


def log_key(deployment_id: uuid.UUID, prediction_id: uuid.UUID) -> str:
    return f"predictions/{deployment_id}/{prediction_id}.json"


class PredictionService:
    def __init__(self, registry: ServingRegistry, store: ScopedStore) -> None:
        self.registry = registry
        self.store = store

    async def predict(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        registry, settings = self.registry, self.registry.settings
        view = await registry.resolve(ref)
        version = view.pick()
        arrays, is_batch = to_arrays(body["inputs"], version.signature, max_elements=settings.max_input_elements)
        loaded = await registry.model(version)
        outputs = await loaded.batcher.run(arrays)
        named = {n: to_json(o if is_batch else o[0]) for n, o in zip(loaded.output_names, outputs, strict=True)}
        prediction_id = random_uuid()
        logged = random.random() < settings.prediction_log_rate
        if logged:
            # Written before the answer, so that feedback on this prediction can always refer to it.
            await self._write(log_key(view.id, prediction_id), _record(view, version, prediction_id, body, named))
        if view.shadows:
            registry.spawn(self._shadow(view, version, prediction_id, body, arrays))
        elapsed = time.perf_counter() - start
        registry.record(view.name, version.version, elapsed)
        return {"prediction_id": str(prediction_id), "deployment_id": str(view.id),
                "model_version_id": str(version.id), "model_name": version.name, "model_version": version.version,
                "batch": is_batch, "outputs": named, "logged": logged, "latency_ms": elapsed * 1000}

    async def _write(self, key: str, record: dict[str, Any]) -> None:
        await self.store.put(key, iterate(orjson.dumps(record)), content_type="application/json")

    async def _shadow(self, view: DeploymentView, primary: VersionView, prediction_id: uuid.UUID,
                      body: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Off the request path: every shadow version answers the same input; its outputs are logged next to
        the prediction (`<prediction_id>.shadow.json`), never returned."""
        shadows: dict[str, Any] = {}
        for shadow in view.shadows:
            try:
                loaded = await self.registry.model(shadow)
                started = time.perf_counter()
                result = await loaded.batcher.run(arrays)
                self.registry.record(view.name, f"{shadow.version}-shadow", time.perf_counter() - started)
                shadows[str(shadow.id)] = {n: to_json(o) for n, o in zip(loaded.output_names, result, strict=True)}
            except Exception as exc:  # noqa: BLE001 - a failing shadow never affects the answer
                shadows[str(shadow.id)] = {"error": repr(exc)[:500]}
        record = {**_record(view, primary, prediction_id, body, {}), "shadow_outputs": shadows}
        del record["outputs"]
        await self._write(f"predictions/{view.id}/{prediction_id}.shadow.json", record)


def _record(view: DeploymentView, version: VersionView, prediction_id: uuid.UUID, body: dict[str, Any],
            outputs: dict[str, Any]) -> dict[str, Any]:
    return {"prediction_id": str(prediction_id), "deployment_id": str(view.id), "model_version_id": str(version.id),
            "model_name": version.name, "model_version": version.version,
            "time": datetime.now(UTC).isoformat(), "inputs": body["inputs"], "outputs": outputs,
            "client_id": body.get("client_id"), "device_id": body.get("device_id")}
