"""Predict (validated, micro-batched, A/B by weight, shadowed, sampled into the prediction log) and
feedback (the served input kept in the object store, `serving.feedback` with all BAM needs)."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.errors import Unprocessable
from mlife_shared.events.contracts import ServingFeedback
from mlife_shared.objectstore import ScopedStore, validate_key
from mlife_shared.objectstore.base import iterate
from msm.config import Settings
from msm.notification.service import emit
from msm.serving.models import Feedback
from msm.serving.runtime import DeploymentView, ServingRegistry, VersionView
from msm.serving.schemas import FeedbackRequest
from msm.serving.validation import to_arrays

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def log_key(deployment_id: uuid.UUID, prediction_id: uuid.UUID) -> str:
    return f"predictions/{deployment_id}/{prediction_id}.json"


async def predict(registry: ServingRegistry, store: ScopedStore, ref: str, body: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    settings = registry.settings
    view = await registry.resolve(ref)
    version = view.pick()
    arrays, is_batch = to_arrays(body["inputs"], version.signature, max_elements=settings.max_input_elements)
    loaded = await registry.model(version)
    outputs = await loaded.batcher.run(arrays)
    named = {n: (o if is_batch else o[0]).tolist() for n, o in zip(loaded.output_names, outputs, strict=True)}
    prediction_id = uuid.uuid4()
    logged = random.random() < settings.prediction_log_rate
    if logged:
        # Written before the answer, so that feedback on this prediction can always refer to it.
        await _write(store, log_key(view.id, prediction_id),
                     _record(view, version, prediction_id, body, named))
    if view.shadows:
        registry.spawn(_shadow(registry, store, view, version, prediction_id, body, arrays))
    elapsed = time.perf_counter() - start
    registry.record(view.name, version.version, elapsed)
    return {"prediction_id": str(prediction_id), "deployment_id": str(view.id), "model_version_id": str(version.id),
            "model_name": version.name, "model_version": version.version, "batch": is_batch, "outputs": named,
            "logged": logged, "latency_ms": elapsed * 1000}


def _record(view: DeploymentView, version: VersionView, prediction_id: uuid.UUID, body: dict[str, Any],
            outputs: dict[str, Any]) -> dict[str, Any]:
    return {"prediction_id": str(prediction_id), "deployment_id": str(view.id), "model_version_id": str(version.id),
            "model_name": version.name, "model_version": version.version,
            "time": datetime.now(timezone.utc).isoformat(), "inputs": body["inputs"], "outputs": outputs,
            "client_id": body.get("client_id"), "device_id": body.get("device_id")}


async def _write(store: ScopedStore, key: str, record: dict[str, Any]) -> None:
    await store.put(key, iterate(json.dumps(record).encode()), content_type="application/json")


async def _shadow(registry: ServingRegistry, store: ScopedStore, view: DeploymentView, primary: VersionView,
                  prediction_id: uuid.UUID, body: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Off the request path: every shadow version answers the same input; its outputs are logged next to
    the prediction (`<prediction_id>.shadow.json`), never returned."""
    shadows: dict[str, Any] = {}
    for shadow in view.shadows:
        try:
            loaded = await registry.model(shadow)
            started = time.perf_counter()
            result = await loaded.batcher.run(arrays)
            registry.record(view.name, f"{shadow.version}-shadow", time.perf_counter() - started)
            shadows[str(shadow.id)] = {n: o.tolist() for n, o in zip(loaded.output_names, result, strict=True)}
        except Exception as exc:  # noqa: BLE001 - a failing shadow never affects the answer
            shadows[str(shadow.id)] = {"error": repr(exc)[:500]}
    record = {**_record(view, primary, prediction_id, body, {}), "shadow_outputs": shadows}
    del record["outputs"]
    await _write(store, f"predictions/{view.id}/{prediction_id}.shadow.json", record)


async def feedback(session: AsyncSession, registry: ServingRegistry, store: ScopedStore, settings: Settings,
                   ref: str, body: FeedbackRequest) -> tuple[Feedback, VersionView]:
    view = await registry.resolve(ref, live_only=False)
    if body.model_version_id is not None:
        version = view.version(body.model_version_id)
        if version is None:
            raise Unprocessable(f"model version {body.model_version_id} is not part of deployment {view.id}")
    elif len(view.primaries) == 1:
        version = view.primaries[0]
    else:
        raise Unprocessable("this deployment serves several versions: send the model_version_id of the answer")
    feedback_id = uuid.uuid4()
    input_ref = None
    if body.inputs is not None:
        to_arrays(body.inputs, version.signature, max_elements=settings.max_input_elements)
        key = f"feedback/{feedback_id}/input.json"
        await store.put(key, iterate(json.dumps({"inputs": body.inputs}).encode()), content_type="application/json")
        input_ref = store.full_key(key)
    elif body.input_ref is not None:
        if not _MD5.match(body.input_ref):
            validate_key(body.input_ref)
            if "://" in body.input_ref or not body.input_ref.startswith(tuple(settings.model_source_prefixes)
                                                                         + ("dam/",)):
                raise Unprocessable("input_ref must be an MD5 or a key in MLife's object store")
        input_ref = body.input_ref
    elif body.prediction_id is not None and await store.stat(log_key(view.id, body.prediction_id)) is not None:
        input_ref = store.full_key(log_key(view.id, body.prediction_id))
    else:
        raise Unprocessable("send the served input (`inputs`) or its `input_ref`: this prediction was not logged")
    row = Feedback(id=feedback_id, deployment_id=view.id, model_version_id=version.id,
                   prediction_id=body.prediction_id, input_ref=input_ref, prediction=body.prediction,
                   correct_label=body.correct_label, client_id=body.client_id, device_id=body.device_id,
                   created_at=utcnow())
    session.add(row)
    await session.flush()
    await emit(session, ServingFeedback(
        deployment_id=view.id, model_name=version.name, model_version=version.version,
        function=view.function or version.name, prediction_id=body.prediction_id, input_ref=input_ref,
        prediction=body.prediction, correct_label=body.correct_label, client_id=body.client_id,
        device_id=body.device_id))
    return row, version
