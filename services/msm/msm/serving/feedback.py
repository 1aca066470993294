"""Feedback: a client flags a served prediction as wrong. The served input is kept in a form the
evaluator reads — the input tensor as a typed `.npy` (an `.npz` of one array per input name for a model
with several inputs), or the image the client names by its DAM MD5 — and `serving.feedback` carries
what BAM needs to file the badcase under the deployment's function."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.errors import Unprocessable
from mlife_shared.events.contracts import ServingFeedback
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore, validate_key
from mlife_shared.objectstore.base import iterate, read_all
from msm.config import Settings
from msm.serving.models import Feedback
from msm.serving.repository import FeedbackRepository
from msm.serving.runtime import DeploymentView, ServingRegistry, VersionView
from msm.serving.schemas import FeedbackRequest
from msm.serving.service import log_key
from msm.serving.validation import one_sample, to_arrays

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class FeedbackService:
    def __init__(self, session: AsyncSession, registry: ServingRegistry, store: ScopedStore,
                 settings: Settings) -> None:
        self.session = session
        self.repo = FeedbackRepository(session)
        self.registry = registry
        self.store = store
        self.settings = settings

    async def feedback(self, ref: str, body: FeedbackRequest) -> tuple[Feedback, VersionView]:
        view = await self.registry.resolve(ref, live_only=False)
        logged = None
        if body.inputs is None and body.input_ref is None and body.prediction_id is not None:
            logged = await self._logged(view, body.prediction_id)
        version = _answering_version(view, body.model_version_id
                                     or (uuid.UUID(logged["model_version_id"]) if logged else None))
        feedback_id = uuid.uuid4()
        if body.inputs is not None:
            input_ref = await self._store_input(version, feedback_id, body.inputs)
        elif body.input_ref is not None:
            input_ref = self._checked_ref(body.input_ref)
        elif logged is not None:
            input_ref = await self._store_input(version, feedback_id, logged["inputs"])
        else:
            raise Unprocessable("send the served input (`inputs`) or its `input_ref`: this prediction was not logged")
        row = await self.repo.add(Feedback(
            id=feedback_id, deployment_id=view.id, model_version_id=version.id, prediction_id=body.prediction_id,
            input_ref=input_ref, prediction=body.prediction, correct_label=body.correct_label,
            client_id=body.client_id, device_id=body.device_id, created_at=utcnow()))
        # The deployment's function, never a guess: without one BAM files the badcase as `unassigned`.
        await outbox.add(self.session, ServingFeedback(
            deployment_id=view.id, model_name=version.name, model_version=version.version, function=view.function,
            model_version_id=version.id, prediction_id=body.prediction_id, input_ref=input_ref,
            prediction=body.prediction, correct_label=body.correct_label, client_id=body.client_id,
            device_id=body.device_id))
        return row, version

    async def _logged(self, view: DeploymentView, prediction_id: uuid.UUID) -> dict[str, Any] | None:
        """The prediction log record (its inputs as the client sent them), or None when it was not logged."""
        key = log_key(view.id, prediction_id)
        if await self.store.stat(key) is None:
            return None
        record = json.loads(await read_all(await self.store.get(key)))
        return record if isinstance(record, dict) and "inputs" in record and "model_version_id" in record else None

    async def _store_input(self, version: VersionView, feedback_id: uuid.UUID, inputs: dict[str, Any]) -> str:
        """The sample, validated against the signature and cast to its dtypes, as `input.npy` (one input) or
        `input.npz` (several) under `feedback/<id>/`; returns its full key."""
        arrays, _ = to_arrays(inputs, version.signature, max_elements=self.settings.max_input_elements)
        sample = one_sample(arrays, version.signature)
        buffer = io.BytesIO()
        if len(sample) == 1:
            np.save(buffer, next(iter(sample.values())), allow_pickle=False)
            key = f"feedback/{feedback_id}/input.npy"
        else:
            _savez(buffer, sample)
            key = f"feedback/{feedback_id}/input.npz"
        await self.store.put(key, iterate(buffer.getvalue()), content_type="application/octet-stream")
        full_key: str = self.store.full_key(key)
        return full_key

    def _checked_ref(self, input_ref: str) -> str:
        """An image's DAM MD5 (kept: the evaluator reads the image itself) or a key in MLife's object store."""
        if not _MD5.match(input_ref):
            validate_key(input_ref)
            if "://" in input_ref or not input_ref.startswith((*self.settings.model_source_prefixes, "dam/")):
                raise Unprocessable("input_ref must be an MD5 or a key in MLife's object store")
        return input_ref


def _answering_version(view: DeploymentView, version_id: uuid.UUID | None) -> VersionView:
    if version_id is not None:
        version = view.version(version_id)
        if version is None:
            raise Unprocessable(f"model version {version_id} is not part of deployment {view.id}")
        return version
    if len(view.primaries) == 1:
        return view.primaries[0]
    raise Unprocessable("this deployment serves several versions: send the model_version_id of the answer")


def _savez(buffer: io.BytesIO, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez(buffer, **arrays)`, written out so that an input named like one of its parameters (`file`,
    `allow_pickle`) cannot collide with them: a zip of `<name>.npy` entries, read back by `np.load`."""
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)
