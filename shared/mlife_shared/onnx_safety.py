"""Safe inspection of an uploaded ONNX file: parse it as a protobuf `ModelProto` (never unpickle, never
import, never execute anything from it), check its structure with `onnx.checker`, and refuse external
data that points outside the model's folder.

`onnx` is imported lazily so that `mlife_shared` stays light; the services that call this pin `onnx`
(and `onnxruntime`) in their own pyproject.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlife_shared.errors import Unprocessable

# Leading bytes of formats that are commonly renamed `.onnx` by mistake (or on purpose).
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x80\x02", "a Python pickle"), (b"\x80\x03", "a Python pickle"), (b"\x80\x04", "a Python pickle"),
    (b"\x80\x05", "a Python pickle"), (b"PK\x03\x04", "a zip archive (e.g. a PyTorch checkpoint)"),
    (b"\x93NUMPY", "a NumPy array"), (b"\x89HDF", "an HDF5 file (e.g. Keras)"), (b"\x1f\x8b", "a gzip file"),
    (b"GGUF", "a GGUF file"), (b"\x7fELF", "an executable"), (b"#!", "a script"),
)


class InvalidOnnxModel(Unprocessable):
    """The file is not a valid ONNX model."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[int | str | None]
    """One entry per dimension: an int for a fixed size, a str for a named symbolic dimension, None if unknown."""
    dtype: str
    """NumPy dtype name (`float32`, `int64`, …), or `onnx:<elem_type>` for a type NumPy cannot hold."""
    elem_type: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "elem_type": self.elem_type}


MAX_METADATA, MAX_METADATA_VALUE = 50, 20_000


@dataclass(frozen=True)
class OnnxInfo:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    opset: int
    """Opset of the default (ai.onnx) domain."""
    opsets: dict[str, int]
    ir_version: int
    size: int
    """Bytes of the model file, plus its external data files."""
    producer_name: str = ""
    producer_version: str = ""
    external_data: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    """The model's metadata_props (e.g. `mlife.preprocess`: how a sample becomes its input), bounded."""

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": [t.as_dict() for t in self.inputs], "outputs": [t.as_dict() for t in self.outputs],
                "opset": self.opset, "opsets": dict(self.opsets), "ir_version": self.ir_version, "size": self.size,
                "producer_name": self.producer_name, "producer_version": self.producer_version,
                "external_data": list(self.external_data), "metadata": dict(self.metadata)}


def _reject_foreign(head: bytes) -> None:
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise InvalidOnnxModel(f"the file is {what}, not an ONNX model; it was not loaded")
    if head.lstrip().startswith((b"{", b"[", b"<")):
        raise InvalidOnnxModel("the file is text (JSON/XML/HTML), not an ONNX model")


def _iter_tensors(graph: Any) -> Any:
    """Every TensorProto of a graph, its nodes' attributes and its subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _iter_node_tensors(graph.node)


def _iter_node_tensors(nodes: Any) -> Any:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _iter_tensors(attr.g)
            for sub in attr.graphs:
                yield from _iter_tensors(sub)


def _check_location(location: str, base: Path) -> Path:
    if not location or "\x00" in location:
        raise InvalidOnnxModel("an external-data location is empty or contains a NUL byte")
    if (os.path.isabs(location) or PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive):
        raise InvalidOnnxModel(f"external-data location {location!r} is absolute; it must be relative to the model")
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if ".." in parts:
        raise InvalidOnnxModel(f"external-data location {location!r} contains '..'")
    root = base.resolve()
    target = (base / location).resolve()  # follows symlinks
    if target != root and root not in target.parents:
        raise InvalidOnnxModel(f"external-data location {location!r} resolves outside the model's folder")
    if not target.is_file():
        raise InvalidOnnxModel(f"external-data file {location!r} is missing next to the model")
    return target


def _dtype_name(elem_type: int) -> str:
    from onnx import helper

    try:
        import numpy as np

        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except Exception:  # noqa: BLE001 - bfloat16, float8, string… have no plain NumPy dtype
        return f"onnx:{elem_type}"


def _tensor_info(value_info: Any) -> TensorInfo:
    t = value_info.type
    if not t.HasField("tensor_type"):
        return TensorInfo(value_info.name, [], f"onnx:{t.WhichOneof('value') or 'unknown'}", 0)
    tt = t.tensor_type
    shape: list[int | str | None] = []
    if tt.HasField("shape"):
        for dim in tt.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                shape.append(dim.dim_param)
            else:
                shape.append(None)
    return TensorInfo(value_info.name, shape, _dtype_name(tt.elem_type), int(tt.elem_type))


def inspect_onnx(path: Path, *, max_bytes: int | None = None) -> OnnxInfo:
    """Describe the ONNX model at `path`, or raise `InvalidOnnxModel` (422) if it is anything else.

    Nothing in the file is executed: the bytes are parsed as a protobuf message, never unpickled.
    External data must be relative, without `..`, and resolve (symlinks included) inside the folder.
    """
    path = Path(path)
    size = _checked_size(path, max_bytes)
    model = _parse(path)
    external, extra_size = _external_data(model, path.parent)
    _run_checker(path)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [_tensor_info(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_tensor_info(v) for v in model.graph.output]
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    return OnnxInfo(inputs=inputs, outputs=outputs, opset=opsets.get("ai.onnx", 0), opsets=opsets,
                    ir_version=int(model.ir_version), size=size + extra_size, producer_name=model.producer_name,
                    producer_version=model.producer_version, external_data=external,
                    metadata={p.key[:200]: p.value[:MAX_METADATA_VALUE] for p in model.metadata_props[:MAX_METADATA]})


def _checked_size(path: Path, max_bytes: int | None) -> int:
    """The file's size, once it is known to be a non-empty regular file within the limit and no pickle,
    zip or other foreign format."""
    if not path.is_file():
        raise InvalidOnnxModel("the model file is missing or is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidOnnxModel("the model file is empty")
    if max_bytes is not None and size > max_bytes:
        raise InvalidOnnxModel(f"the model file is {size} bytes; the limit is {max_bytes}")
    with path.open("rb") as fh:
        _reject_foreign(fh.read(16))
    return size


def _parse(path: Path) -> Any:
    """The ModelProto (its external data not loaded), with the parts every real model has."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise InvalidOnnxModel(f"the file does not parse as an ONNX ModelProto: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is the uploader's problem, not a 500
        raise InvalidOnnxModel(f"the file does not parse as an ONNX ModelProto: {type(exc).__name__}") from exc
    # Protobuf is lenient: random bytes can decode into a message full of unknown fields. Demand the
    # parts every real model has before handing it to the checker.
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise InvalidOnnxModel("the file is not an ONNX model: ir_version, graph or opset_import is missing")
    if not model.graph.output or not model.graph.node:
        raise InvalidOnnxModel("the ONNX graph has no nodes or no outputs")
    return model


def _external_data(model: Any, base: Path) -> tuple[list[str], int]:
    """The external data files the model names (each checked to lie inside `base`) and their total size."""
    import onnx

    external: list[str] = []
    extra_size = 0
    seen: set[Path] = set()
    tensors = [*_iter_tensors(model.graph), *(t for f in model.functions for t in _iter_node_tensors(f.node))]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        target = _check_location(entries.get("location", ""), base)
        if target not in seen:
            seen.add(target)
            external.append(entries["location"])
            extra_size += target.stat().st_size
    return external, extra_size


def _run_checker(path: Path) -> None:
    import onnx

    try:
        # The path form lets the checker handle models > 2 GiB and verify external data files.
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends → 422 with the checker's message
        message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        raise InvalidOnnxModel(f"the ONNX checker rejected the model: {message}") from exc
