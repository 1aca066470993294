"""Manifest items → model inputs, in groups of samples that can be fed together.

Images and table rows go through the declared preprocessing into one array for the model's input; tensor files
are fed as they are, grouped by shape (a set may mix them with images or rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from mlife_shared.onnx_safety import TensorInfo
from mtt.evaluator.preprocess import METADATA_KEY, InvalidPreprocess, Preprocess
from mtt.evaluator.tensor import bind, is_table_row, item_ref, load_tensors, tensor_format, tensor_shapes


@dataclass
class Group:
    """Samples fed to the model together: their positions in the item list and the feed."""

    index: np.ndarray
    feed: dict[str, np.ndarray]


def declared(prep: Preprocess | None, kind: str, where: str) -> Preprocess:
    what = "an image" if kind == "image" else "a table row"
    if prep is None:
        raise InvalidPreprocess(f"{where} is {what} and no preprocessing is declared: set params.preprocess on the "
                                f"task (or the model's {METADATA_KEY!r} metadata); see the MTT README")
    if prep.kind != kind:
        raise InvalidPreprocess(f"{where} is {what}; the declared preprocessing is for {prep.kind} items")
    return prep


def image_sample(prep: Preprocess, fh: IO[bytes] | str, where: str, out: np.ndarray | None = None) -> np.ndarray:
    """One image file → one sample (written into `out` when given)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh) as img:
            return prep.to_array(img, out)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidPreprocess(f"{where} is not a readable image: {exc}") from exc


class _Declared:
    """One preallocated array for the images or rows of a set (filled in item order)."""

    def __init__(self, prep: Preprocess, n: int) -> None:
        dtype = np.float64 if prep.kind == "table" else np.dtype(prep.dtype)
        self.x = np.empty((n, *prep.sample_shape()), dtype=dtype)
        self.index: list[int] = []

    def add(self, i: int, sample: np.ndarray) -> None:
        self.x[len(self.index)] = sample
        self.index.append(i)

    def add_image(self, i: int, prep: Preprocess, fh: IO[bytes], where: str) -> None:
        image_sample(prep, fh, where, self.x[len(self.index)])
        self.index.append(i)


def load_inputs(items: list[dict[str, Any]], prep: Preprocess | None, inputs: list[TensorInfo],
                input_name: str | None) -> list[Group]:
    rows: _Declared | None = None
    tensors: dict[tuple[Any, ...], tuple[list[int], list[dict[str, np.ndarray]]]] = {}
    hint = prep.input_name if prep is not None else None
    for i, it in enumerate(items):
        where = item_ref(it, i)
        if is_table_row(it):
            p = declared(prep, "table", where)
            rows = rows or _Declared(p, len(items))
            rows.add(i, p.row(it["features"], where))
            continue
        path = it.get("local_path")
        if not path:
            raise InvalidPreprocess(f"{where} has no data file")
        with open(path, "rb") as fh:
            fmt = tensor_format(fh.read(8))
            fh.seek(0)
            if fmt is None:
                p = declared(prep, "image", where)
                rows = rows or _Declared(p, len(items))
                rows.add_image(i, p, fh, where)
                continue
            shapes = tensor_shapes(fh, where) or {}  # checked on the headers before any data is read
            binding = bind({k: shape for k, (shape, _) in shapes.items()}, inputs, hint, where)
            arrays = load_tensors(fh, fmt, where)
        feed = {info.name: arrays[k].astype(np.dtype(info.dtype), copy=False) for k, info in binding.items()}
        sig = tuple(sorted((name, a.shape, a.dtype.str) for name, a in feed.items()))
        idx, feeds = tensors.setdefault(sig, ([], []))
        idx.append(i)
        feeds.append(feed)
    groups = []
    if rows is not None:
        if input_name is None:
            raise InvalidPreprocess(f"set preprocess.input_name to one of {sorted(t.name for t in inputs)}")
        groups.append(Group(np.asarray(rows.index, dtype=np.int64), {input_name: rows.x[:len(rows.index)]}))
    for idx, feeds in tensors.values():
        groups.append(Group(np.asarray(idx, dtype=np.int64),
                            {name: np.stack([f[name] for f in feeds]) for name in feeds[0]}))
    return groups
