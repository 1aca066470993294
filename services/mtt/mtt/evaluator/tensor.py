"""Tensor files and table rows as dataset items.

A tensor item is a `.npy` file (one array: the model's single input) or a `.npz` file (one array per model
input, named after it), recognised by its magic bytes, read with `allow_pickle=False`, one sample each: its
shape is the model input's without the batch axis. A table row is an item with `features` and no file."""

from __future__ import annotations

import zipfile
from typing import IO, Any, Literal

import numpy as np

from mlife_shared.onnx_safety import TensorInfo
from mtt.evaluator.preprocess import InvalidPreprocess

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
TENSOR_SUFFIXES = (".npy", ".npz")
# One sample per file: bounds checked on the headers, before any array data is read or decompressed.
MAX_ARRAYS = 64
MAX_TENSOR_BYTES = 512 * 1024 * 1024
FILE_FIELDS = ("local_path", "key", "data_key", "object_key", "md5")

TensorFormat = Literal["npy", "npz"]


def is_table_row(item: dict[str, Any]) -> bool:
    """A row of a table: `features` and no data file (nothing to download for it)."""
    return isinstance(item.get("features"), dict) and not any(item.get(k) for k in FILE_FIELDS)


def item_ref(item: dict[str, Any], i: int) -> str:
    return f"item {i} ({item.get('md5') or item.get('key') or item.get('id') or 'row'})"


def data_key(item: dict[str, Any]) -> str | None:
    """The object key of an item's file, as the runner resolves it."""
    key = item.get("key") or item.get("data_key") or item.get("object_key")
    return str(key) if key else (f"dam/files/{item['md5']}" if item.get("md5") else None)


def tensor_format(head: bytes) -> TensorFormat | None:
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    return None


def load_tensors(fh: IO[bytes], fmt: TensorFormat, where: str) -> dict[str, np.ndarray]:
    """The arrays of a tensor file: {"": array} for `.npy`, {name: array} for `.npz` (call `tensor_shapes`
    first: it refuses what must not be loaded)."""
    try:
        loaded = np.load(fh, allow_pickle=False)
        if fmt == "npy":
            return {"": np.asarray(loaded)}
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidPreprocess(f"{where} is not a readable .{fmt} file: {exc}") from exc


def tensor_shapes(fh: IO[bytes], where: str) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """Shape and dtype of each array of a tensor file (a seekable binary file) from its headers — no array
    data is read — or None when it is not a tensor file. Refuses what must not be loaded: arrays of Python
    objects or text, more than MAX_ARRAYS arrays, more than MAX_TENSOR_BYTES in all."""
    fmt = tensor_format(fh.read(8))
    fh.seek(0)
    if fmt is None:
        return None
    try:
        if fmt == "npy":
            out = {"": _npy_header(fh)}
        else:
            with zipfile.ZipFile(fh) as zf:
                names = zf.namelist()
                if len(names) > MAX_ARRAYS:
                    raise InvalidPreprocess(f"{where} holds {len(names)} arrays; a tensor file holds one per model "
                                            f"input (at most {MAX_ARRAYS})")
                out = {}
                for name in names:
                    with zf.open(name) as member:
                        out[name.removesuffix(".npy")] = _npy_header(member)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidPreprocess(f"{where} is not a readable .{fmt} file: {exc}") from exc
    finally:
        fh.seek(0)
    for name, (_shape, dtype) in out.items():
        if dtype.kind not in "biuf":
            raise InvalidPreprocess(f"{where}: array {name or '(npy)'} holds {dtype} values; tensor files hold "
                                    "numbers")
    size = sum(int(np.prod(shape, dtype=object)) * dtype.itemsize for shape, dtype in out.values())
    if size > MAX_TENSOR_BYTES:
        raise InvalidPreprocess(f"{where}: its arrays would take {size} bytes; one sample is at most "
                                f"{MAX_TENSOR_BYTES}")
    return out


def _npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f"unsupported .npy version {version}")
    shape, _, dtype = read(fh)
    return tuple(shape), dtype


def bind(shapes: dict[str, tuple[int, ...]], inputs: list[TensorInfo], input_name: str | None,
         where: str) -> dict[str, TensorInfo]:
    """Which model input each array of a tensor file feeds (array name → input), checking every shape: a
    single array feeds the single input (or `input_name`); several arrays feed the inputs named after them."""
    by_name = {t.name: t for t in inputs}
    if len(shapes) == 1 and (len(inputs) == 1 or input_name in by_name) and \
            (next(iter(shapes)) == "" or next(iter(shapes)) not in by_name):
        target = by_name[input_name] if input_name in by_name else inputs[0]
        binding = {next(iter(shapes)): target}
    else:
        missing = sorted(set(by_name) - set(shapes))
        extra = sorted(set(shapes) - set(by_name))
        if missing or extra:
            raise InvalidPreprocess(f"{where}: its arrays {sorted(shapes)} do not name the model inputs "
                                    f"{sorted(by_name)} (a .npz holds one array per input, named after it)")
        binding = {name: by_name[name] for name in shapes}
    for name, info in binding.items():
        shape = shapes[name]
        model = info.shape
        fits = len(model) == len(shape) + 1 and all(
            not (isinstance(m, int) and m > 0) or m == s for m, s in zip(model[1:], shape, strict=False))
        if not fits:
            dims = ", ".join("?" if not (isinstance(m, int) and m > 0) else str(m) for m in model[1:])
            raise InvalidPreprocess(f"{where}: a tensor of shape {list(shape)}; the model input {info.name!r} takes "
                                    f"one sample of shape [{dims}] (its shape without the batch axis)")
        if info.dtype.startswith("onnx:"):
            raise InvalidPreprocess(f"{where}: the model input {info.name!r} has type {info.dtype}, which a "
                                    "tensor file cannot hold")
    return binding
