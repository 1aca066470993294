"""JSON inputs → NumPy arrays checked against the model's signature (names, rank, fixed dims, dtype)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlife_shared.errors import PayloadTooLarge, Unprocessable


class InvalidInput(Unprocessable):
    """The input does not match the model's signature."""


def to_arrays(inputs: dict[str, Any], signature: dict[str, Any], *, max_elements: int) -> tuple[dict[str, np.ndarray], bool]:
    """The model's inputs as arrays with a batch dimension, and whether the request was a batch."""
    expected = {t["name"]: t for t in signature.get("inputs", [])}
    if not isinstance(inputs, dict) or not inputs:
        raise InvalidInput(f"`inputs` must be an object with the model's inputs: {sorted(expected)}")
    missing, extra = sorted(set(expected) - set(inputs)), sorted(set(inputs) - set(expected))
    if missing or extra:
        raise InvalidInput({"missing": missing, "unexpected": extra, "expected": sorted(expected)})
    budget = max_elements  # the body size limit bounds the memory np.asarray can take before this check
    arrays: dict[str, np.ndarray] = {}
    batch_flags = set()
    for name, spec in expected.items():
        array = _array(name, spec["dtype"], inputs[name])
        budget -= array.size
        if budget < 0:
            raise PayloadTooLarge(f"the input has more than {max_elements} elements")
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InvalidInput(f"input {name!r} contains NaN or infinity")
        arrays[name], is_batch = _with_batch_axis(name, array, spec["shape"])
        batch_flags.add(is_batch)
    sizes = {a.shape[0] for a in arrays.values()}
    if len(sizes) > 1 or len(batch_flags) > 1:
        raise InvalidInput("all inputs must have the same batch size")
    return arrays, batch_flags.pop()


def _array(name: str, dtype: str, value: Any) -> np.ndarray:
    """One input as a rectangular array of the signature's dtype."""
    if dtype.startswith("onnx:"):
        raise InvalidInput(f"input {name!r} has a type ({dtype}) the JSON API cannot carry")
    try:
        array = np.asarray(value, dtype=np.dtype(dtype))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"input {name!r} is not a rectangular array of {dtype}: {exc}") from exc
    if array.dtype == object:
        raise InvalidInput(f"input {name!r} is not a rectangular array of {dtype}")
    return array


def _with_batch_axis(name: str, array: np.ndarray, shape: list[Any]) -> tuple[np.ndarray, bool]:
    """`array` checked against the signature's `shape` (rank, fixed dims), one sample given a batch axis;
    and whether it was a batch already."""
    batched = not isinstance(shape[0], int) if shape else False
    if batched and array.ndim == len(shape) - 1:
        array, is_batch = array[np.newaxis, ...], False
    elif array.ndim == len(shape):
        is_batch = True
    else:
        raise InvalidInput(f"input {name!r} has rank {array.ndim}; the model takes {len(shape)}"
                           + (f" (or {len(shape) - 1} for one sample)" if batched else "") + f", shape {shape}")
    for axis, (got, want) in enumerate(zip(array.shape, shape, strict=True)):
        if isinstance(want, int) and got != want:
            raise InvalidInput(f"input {name!r} has {got} at axis {axis}; the model takes {want} (shape {shape})")
    if array.shape[0] == 0:
        raise InvalidInput(f"input {name!r} is an empty batch")
    return array, is_batch


def one_sample(arrays: dict[str, np.ndarray], signature: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of `to_arrays` as one sample: the leading batch axis (symbolic, or fixed at 1) of size 1
    dropped. A batch of several samples is refused: feedback is about one prediction."""
    shapes = {t["name"]: t["shape"] for t in signature.get("inputs", [])}
    out = {}
    for name, array in arrays.items():
        shape = shapes[name]
        if not shape or (isinstance(shape[0], int) and shape[0] != 1):
            out[name] = array  # no batch axis: the whole tensor is the sample
        elif array.shape[0] != 1:
            raise InvalidInput(f"feedback is about one prediction: input {name!r} holds a batch of "
                               f"{array.shape[0]} samples; send the one sample that was answered wrong")
        else:
            out[name] = array[0]
    return out


def to_json(value: Any) -> Any:
    """An onnxruntime output as JSON values: tensors (numbers, strings, bools) become nested lists, a
    sequence of maps (scikit-learn classifiers' ZipMap output) a list of objects."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()  # onnxruntime's string tensors hold `str` objects: these are JSON already
    if isinstance(value, dict):
        return {to_json(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
