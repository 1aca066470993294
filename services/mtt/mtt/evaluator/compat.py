"""Can the model take every item of a set? Answered before any run, from the model's declared inputs and the
items' metadata (kind, width/height from DAM), reading a file's first bytes only when the metadata does not
tell (a tensor's shape, an image of unknown size). Nothing runs the model."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mlife_shared.onnx_safety import OnnxInfo, inspect_onnx
from mtt.evaluator.evaluate import declared_in_model, ground_truth, scoring
from mtt.evaluator.preprocess import METADATA_KEY, InvalidPreprocess, Preprocess, main_input, parse_preprocess
from mtt.evaluator.regression import truth_values
from mtt.evaluator.tensor import TENSOR_SUFFIXES, bind, data_key, is_table_row, item_ref, tensor_format, tensor_shapes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
Reader = Callable[[str], bytes]


def incompatibility(items: list[dict[str, Any]], model_path: Path, params: dict[str, Any] | None = None, *,
                    read: Reader | None = None) -> str | None:
    """None when the model can take every item; else the reason. An item's file is looked at only when its
    metadata does not tell its kind, an image's size or a tensor's shape: its header from `local_path` when
    the item has one, else from `read(key)` → the file's bytes (the whole file for a `.npz`; the first KiB is
    enough for a `.npy` or an image) when given."""
    params = params or {}
    info = inspect_onnx(model_path)
    try:
        prep = parse_preprocess(params["preprocess"], where="params.preprocess") if "preprocess" in params \
            else declared_in_model(model_path)
        _check(items, info, prep, params, read)
    except InvalidPreprocess as exc:
        return str(exc.message)
    return None


def _check(items: list[dict[str, Any]], info: OnnxInfo, prep: Preprocess | None, params: dict[str, Any],
           read: Reader | None) -> None:
    tables, images, tensors = [], [], []
    for i, it in enumerate(items):
        if is_table_row(it):
            tables.append(i)
            continue
        kind = _file_kind(it, read)
        if kind == "image":
            images.append(i)
        elif kind == "tensor":
            tensors.append(i)
    for kind, idx in (("table", tables), ("image", images)):
        if idx:
            _declared_for(kind, len(idx), prep, info)
    if prep is not None and tables:
        _check_rows(items, tables, prep)
    if prep is not None and images:
        _check_images(items, images, prep, read)
    if tensors:
        _check_tensors(items, tensors, info, prep, read)
    target, _ = scoring(prep, params)
    if (target or (prep.target if prep is not None else "classification")) == "regression":
        truth_values([ground_truth(it) for it in items], items)


def _file_kind(it: dict[str, Any], read: Reader | None) -> str | None:
    """image / tensor from the metadata; else from the file's first bytes when it can be read; else None."""
    media = it.get("media_type")
    name = str(it.get("path") or data_key(it) or it.get("local_path") or "")
    suffix = Path(name).suffix.lower()
    if media == "tensor" or suffix in TENSOR_SUFFIXES:
        return "tensor"
    if media == "image" or (it.get("width") and it.get("height")) or suffix in IMAGE_SUFFIXES:
        return "image"
    fh = _open(it, read)
    if fh is None:
        return None
    with fh:
        return "tensor" if tensor_format(fh.read(8)) else "image"


def _open(it: dict[str, Any], read: Reader | None) -> IO[bytes] | None:
    """The item's file: the local copy when there is one, else `read(key)` in memory, else None."""
    if it.get("local_path"):
        return open(it["local_path"], "rb")
    key = data_key(it)
    if read is None or key is None:
        return None
    return io.BytesIO(read(key))


def _declared_for(kind: str, n: int, prep: Preprocess | None, info: OnnxInfo) -> None:
    what = f"{n} image file{'s' if n > 1 else ''}" if kind == "image" else f"{n} table row{'s' if n > 1 else ''}"
    if prep is None:
        example = '{"kind": "table", "columns": [...]}' if kind == "table" else '{"size": [height, width], ...}'
        raise InvalidPreprocess(f"the set has {what} and no preprocessing is declared: set params.preprocess "
                                f"(or the model's {METADATA_KEY!r} metadata) to {example}")
    if prep.kind != kind:
        takes = f"images ({_size(prep)})" if prep.kind == "image" else "tensor files only" \
            if prep.kind == "tensor" else f"table rows ({_columns(prep.columns or [])})"
        raise InvalidPreprocess(f"the set has {what}; the model takes {takes}")
    main_input(prep, info.inputs)


def _size(prep: Preprocess) -> str:
    h, w = prep.sample_size()
    return f"{h}x{w} {prep.mode}"


def _columns(columns: list[str]) -> str:
    shown = ", ".join(columns[:8])
    return f"columns {shown}" if len(columns) <= 8 else f"{len(columns)} columns: {shown}, …"


def _check_rows(items: list[dict[str, Any]], rows: list[int], prep: Preprocess) -> None:
    lacking = [i for i in rows if any(c not in items[i]["features"] for c in prep.columns or ())]
    if lacking:
        i = lacking[0]
        missing = [c for c in prep.columns or () if c not in items[i]["features"]]
        raise InvalidPreprocess(f"{len(lacking)} of {len(rows)} table rows lack declared columns: "
                                f"{item_ref(items[i], i)} has no column {', '.join(map(repr, missing))} "
                                f"(declared: {prep.columns})")
    for i in rows:
        prep.row(items[i]["features"], item_ref(items[i], i))  # every value a number (or empty)


def _check_images(items: list[dict[str, Any]], images: list[int], prep: Preprocess, read: Reader | None) -> None:
    if prep.resize:
        return
    h, w = prep.sample_size()
    other = []
    for i in images:
        size = _image_size(items[i], read)
        if size is not None and size != (h, w):
            other.append((i, size))
    if other:
        i, (ih, iw) = other[0]
        raise InvalidPreprocess(f"{len(other)} of {len(images)} images are not {h}x{w} (h x w), the model's declared "
                                f"size, and preprocess.resize is off: {item_ref(items[i], i)} is {ih}x{iw}")


def _image_size(it: dict[str, Any], read: Reader | None) -> tuple[int, int] | None:
    """(height, width) from DAM's metadata, else from the image header (when the file can be read)."""
    if it.get("width") and it.get("height"):
        return int(it["height"]), int(it["width"])
    fh = _open(it, read)
    if fh is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with fh, Image.open(fh) as img:  # reads the header only
            return img.size[1], img.size[0]
    except (UnidentifiedImageError, OSError):
        return None  # not readable as an image: the run says so with its item


def _check_tensors(items: list[dict[str, Any]], tensors: list[int], info: OnnxInfo, prep: Preprocess | None,
                   read: Reader | None) -> None:
    for i in tensors:
        where = item_ref(items[i], i)
        fh = _open(items[i], read)
        if fh is None:
            continue  # no way to see its shape before the run
        with fh:
            shapes = tensor_shapes(fh, where)
        if shapes is None:
            raise InvalidPreprocess(f"{where} is named as a tensor file but is not a .npy/.npz file")
        bind({k: s for k, (s, _) in shapes.items()}, info.inputs, prep.input_name if prep else None, where)
