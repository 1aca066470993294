"""The compatibility pre-check: which sets a model cannot take, said before any run, from the declared
preprocessing, the model's inputs and the items' metadata; files are read only when the metadata cannot tell."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mtt.evaluator.compat import incompatibility
from mtt.evaluator.preprocess import METADATA_KEY
from tests.mtt.onnx_models import linear_classifier, two_input_classifier, with_metadata

IMAGE_PREP = {"size": [8, 8], "mode": "L", "layout": "flat"}
COLUMNS = [f"f{i}" for i in range(64)]


@pytest.fixture
def image_model(tmp_path: Path) -> Path:
    path = tmp_path / "image.onnx"
    path.write_bytes(with_metadata(linear_classifier(64, 10), {METADATA_KEY: json.dumps(IMAGE_PREP)}))
    return path


@pytest.fixture
def table_model(tmp_path: Path) -> Path:
    path = tmp_path / "table.onnx"
    path.write_bytes(with_metadata(linear_classifier(64, 10), {METADATA_KEY: json.dumps(
        {"kind": "table", "columns": COLUMNS})}))
    return path


@pytest.fixture
def bare_model(tmp_path: Path) -> Path:
    path = tmp_path / "bare.onnx"
    path.write_bytes(linear_classifier(64, 10))
    return path


def image(md5: str, h: int | None = 8, w: int | None = 8, **kw: Any) -> dict[str, Any]:
    return {"md5": md5, "key": f"dam/files/{md5}", "path": f"img/{md5}.png", "media_type": "image", "width": w,
            "height": h, "label": "1", **kw}


def row(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "features": {c: float(i) for c in COLUMNS}, "label": "1", **kw}


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def refuse_reads(key: str) -> bytes:
    raise AssertionError(f"{key} was read although its metadata says enough")


def test_a_set_the_model_takes(image_model: Path, table_model: Path) -> None:
    store = {"dam/files/t1": npy_bytes(np.zeros(64, dtype=np.float32))}
    assert incompatibility([image("a"), image("b")], image_model, {}, read=refuse_reads) is None
    assert incompatibility([image("a"), {"md5": "t1"}], image_model, {}, read=store.__getitem__) is None
    assert incompatibility([row(0), row(1), {"md5": "t1"}], table_model, {}, read=store.__getitem__) is None
    assert incompatibility([], image_model, {}) is None


def test_image_items_for_a_table_model(table_model: Path) -> None:
    reason = incompatibility([image("a"), image("b"), row(0)], table_model, {})
    assert reason == "the set has 2 image files; the model takes table rows (64 columns: f0, f1, f2, f3, f4, f5, f6, " \
                     "f7, …)"


def test_table_rows_for_an_image_model(image_model: Path) -> None:
    reason = incompatibility([row(0), row(1), row(2)], image_model, {})
    assert reason == "the set has 3 table rows; the model takes images (8x8 L)"


def test_images_of_another_size_without_resize(image_model: Path) -> None:
    items = [image("a"), image("b", 32, 32), image("c", 32, 32)]
    assert incompatibility(items, image_model, {}, read=refuse_reads) == \
        "2 of 3 images are not 8x8 (h x w), the model's declared size, and preprocess.resize is off: " \
        "item 1 (b) is 32x32"
    assert incompatibility(items, image_model, {"preprocess": {**IMAGE_PREP, "resize": True}}) is None


def test_an_image_of_unknown_size_is_read_from_its_header(image_model: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 12), dtype=np.uint8), mode="L").save(buf, format="PNG")
    unknown = {"md5": "u", "key": "dam/files/u", "label": "1"}  # no media type, size or name: unknown
    assert incompatibility([unknown], image_model, {}) is None  # cannot tell before the run: not refused
    assert incompatibility([unknown], image_model, {}, read={"dam/files/u": buf.getvalue()}.__getitem__) == \
        "1 of 1 images are not 8x8 (h x w), the model's declared size, and preprocess.resize is off: " \
        "item 0 (u) is 16x12"
    (tmp_path / "u.png").write_bytes(buf.getvalue())
    assert "is 16x12" in str(incompatibility([{**unknown, "local_path": str(tmp_path / "u.png")}], image_model, {}))


def test_a_tensor_of_another_shape(image_model: Path, tmp_path: Path) -> None:
    store = {"dam/files/t": npy_bytes(np.zeros((8, 8), dtype=np.float32))}
    item = {"md5": "t", "path": "feedback/input.npy"}
    assert incompatibility([image("a"), item], image_model, {}, read=store.__getitem__) == \
        "item 1 (t): a tensor of shape [8, 8]; the model input 'X' takes one sample of shape [64] " \
        "(its shape without the batch axis)"
    (tmp_path / "t.npy").write_bytes(store["dam/files/t"])
    assert "shape [8, 8]" in str(incompatibility([{"md5": "t", "local_path": str(tmp_path / "t.npy")}],
                                                 image_model, {}))


def test_an_npz_missing_an_input(tmp_path: Path) -> None:
    model = tmp_path / "two.onnx"
    model.write_bytes(two_input_classifier())
    good, bad = io.BytesIO(), io.BytesIO()
    np.savez(good, A=np.zeros(3, np.float32), B=np.zeros(2, np.float32))
    np.savez(bad, A=np.zeros(3, np.float32))
    store = {"dam/files/g": good.getvalue(), "dam/files/b": bad.getvalue()}
    assert incompatibility([{"md5": "g", "media_type": "tensor"}], model, {}, read=store.__getitem__) is None
    assert incompatibility([{"md5": "g"}, {"md5": "b"}], model, {}, read=store.__getitem__) == \
        "item 1 (b): its arrays ['A'] do not name the model inputs ['A', 'B'] (a .npz holds one array per input, " \
        "named after it)"


def test_a_table_missing_a_declared_column(table_model: Path) -> None:
    short = row(2)
    del short["features"]["f7"], short["features"]["f9"]
    reason = incompatibility([row(0), row(1), short], table_model, {})
    assert reason == f"1 of 3 table rows lack declared columns: item 2 (r2) has no column 'f7', 'f9' " \
                     f"(declared: {COLUMNS})"
    text = row(3)
    text["features"]["f0"] = "red"
    assert incompatibility([text], table_model, {}) == "item 0 (r3): column 'f0' is 'red', not a number"


def test_no_preprocessing_declared(bare_model: Path) -> None:
    assert incompatibility([image("a")], bare_model, {}) == \
        "the set has 1 image file and no preprocessing is declared: set params.preprocess (or the model's " \
        "'mlife.preprocess' metadata) to {\"size\": [height, width], ...}"
    assert "2 table rows and no preprocessing is declared" in str(incompatibility([row(0), row(1)], bare_model, {}))
    store = {"dam/files/t": npy_bytes(np.zeros(64))}
    assert incompatibility([{"md5": "t"}], bare_model, {}, read=store.__getitem__) is None  # tensors need none


def test_declared_columns_that_do_not_fit_the_model_input(bare_model: Path) -> None:
    reason = incompatibility([row(0)], bare_model, {"preprocess": {"kind": "table", "columns": ["f0", "f1"]}})
    assert reason is not None and "[batch, 2]" in reason


def test_regression_on_labels_that_are_not_numbers(table_model: Path) -> None:
    items = [row(0, label="3.5"), row(1, label="high")]
    assert incompatibility(items, table_model, {"target": "regression"}) == \
        "the target is regression; item 1 (r1) has the ground truth 'high', not a number"
    assert incompatibility(items[:1], table_model, {"target": "regression"}) is None
