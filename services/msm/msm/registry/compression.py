"""Dynamic INT8 quantization (onnxruntime.quantization) → a new version of the same model, with the
size before and after. The accuracy delta is measured by MTT: the new version is registered with
`evaluate_on_dataset_id`, and the delta is recorded when both versions' results on that dataset are in
(see testing/service.py). A labelled sample given with the request gets a quick local delta too."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.errors import Unprocessable
from mlife_shared.objectstore import ObjectStore, ScopedStore
from msm.config import Settings
from msm.registry.models import Compression, ModelVersion
from msm.registry.repository import RegistryRepository
from msm.registry.service import RegistryService, download, scratch_dir
from msm.serving.validation import to_arrays

# What a model without any default-domain node gets imported: DynamicQuantizeLinear and MatMulInteger,
# which dynamic quantization inserts, need opset 10+.
_MIN_DEFAULT_OPSET = 11


def quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    normalised = target.with_name(f"{target.stem}.opsets.onnx")
    if normalise_opsets(source, normalised):
        source = normalised
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def normalise_opsets(source: Path, target: Path) -> bool:
    """Write the model with one opset import per domain (the highest version; `ai.onnx` is the default
    domain `''`) and a default-domain import even when no node uses it; False when it had that already.
    The quantizer needs exactly one default-domain import: skl2onnx lists it twice for a
    LogisticRegression with `zipmap=False` (examples/digits/train.py), and an ai.onnx.ml-only model
    lists none."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    # No node of the default domain: any version the quantizer's own nodes run with will do.
    versions.setdefault("", _MIN_DEFAULT_OPSET)
    wanted = [helper.make_opsetid(domain, version) for domain, version in versions.items()]
    if [(o.domain, o.version) for o in model.opset_import] == [(o.domain, o.version) for o in wanted]:
        return False
    del model.opset_import[:]
    model.opset_import.extend(wanted)
    onnx.save(model, str(target))
    return True


def sample_accuracy(original: Path, compressed: Path, signature: dict[str, Any], sample: dict[str, Any],
                    max_elements: int) -> dict[str, Any]:
    import onnxruntime as ort

    if not isinstance(sample, dict) or "inputs" not in sample or "labels" not in sample:
        raise Unprocessable("sample must be {'inputs': {name: rows}, 'labels': [class (index or label) per row]}")
    arrays, _ = to_arrays(sample["inputs"], signature, max_elements=max_elements)
    labels = np.asarray(sample["labels"])
    rows = next(iter(arrays.values())).shape[0]
    if labels.shape != (rows,):
        raise Unprocessable(f"labels must hold one class index per sample row ({rows})")
    out = {}
    for name, path in (("original", original), ("compressed", compressed)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out[name] = float((_predicted(session.run(None, arrays)) == labels).mean())
    return {"samples": rows, "accuracy_original": out["original"], "accuracy_compressed": out["compressed"],
            "accuracy_delta": out["compressed"] - out["original"]}


def _predicted(outputs: list[Any]) -> np.ndarray:
    """The predicted class per row: a classifier's label output (one value per row, as scikit-learn
    exports give first), else the argmax of its first output's scores."""
    first = outputs[0]
    if isinstance(first, np.ndarray) and first.ndim == 1:
        return first
    predicted: np.ndarray = np.argmax(np.asarray(first), axis=-1)
    return predicted


class CompressionService:
    def __init__(self, session: AsyncSession, settings: Settings, store: ScopedStore, raw_store: ObjectStore) -> None:
        self.registry = RegistryService(session, settings, store)
        self.repo = RegistryRepository(session)
        self.settings = settings
        self.raw_store = raw_store

    async def compress(self, version_id: uuid.UUID, *, actor: str, dataset_id: uuid.UUID | None,
                       sample: dict[str, Any] | None) -> tuple[ModelVersion, Compression]:
        """Quantize a version into a new one of the same model; its accuracy delta on `dataset_id` is recorded
        when MTT's results on both arrive, its delta on `sample` at once."""
        source = await self.registry.get_version(version_id)
        if not source.servable:
            raise Unprocessable("only ONNX versions can be quantized")
        if (await self.repo.compression_of(source.id)) is not None:
            raise Unprocessable("this version is already quantized")
        with scratch_dir() as tmp:
            original = await download(self.raw_store, source.object_key, tmp / "original.onnx")
            compressed = tmp / "int8.onnx"
            try:
                await asyncio.to_thread(quantize, original, compressed)
            except Exception as exc:  # noqa: BLE001 - a model the quantizer cannot handle is the caller's 422
                raise Unprocessable(f"quantization failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
            sample_delta = None
            if sample is not None:
                sample_delta = await asyncio.to_thread(sample_accuracy, original, compressed, source.signature,
                                                       sample, self.settings.max_input_elements)
            version = await self.registry.register(
                source.name, compressed, source="compression", actor=actor, tags=[*source.tags, "int8"],
                description=f"Dynamic INT8 quantization of version {source.version}", parent=source,
                lineage={"compressed_from": str(source.id), "method": "dynamic_int8",
                         **({"evaluate_on_dataset_id": str(dataset_id)} if dataset_id else {})},
                evaluate_on=dataset_id)
        comp = await self.repo.add(Compression(
            source_version_id=source.id, compressed_version_id=version.id, method="dynamic_int8",
            dataset_id=dataset_id, size_before=source.size, size_after=version.size, metric_delta=None,
            sample_delta=sample_delta))
        return version, comp
