"""The built-in evaluator on table rows, tensor files and regression targets, with real scikit-learn models
exported by skl2onnx (wine: string classes; diabetes: a linear regressor) and small hand-built graphs; every
expected number is computed here independently (scikit-learn, NumPy)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mlife_shared.events.contracts import TestingOutcomeLine as OutcomeLine
from mtt.evaluator.evaluate import evaluate
from mtt.evaluator.preprocess import METADATA_KEY, InvalidPreprocess, Preprocess, parse_preprocess
from tests.mtt.onnx_models import _Boom, linear_classifier, two_input_classifier, with_metadata

WINE_CLASSES = np.array(["barolo", "grignolino", "barbera"])


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A scaler + logistic regression on scikit-learn's wine, string classes, its columns in the model metadata."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    w = load_wine()
    x, y = w.data.astype(np.float32), WINE_CLASSES[w.target]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)).fit(xtr, ytr)
    columns = list(w.feature_names)
    onx = to_onnx(pipe, xtr[:1], target_opset=17).SerializeToString()
    path = tmp_path_factory.mktemp("wine") / "wine.onnx"
    path.write_bytes(with_metadata(onx, {METADATA_KEY: json.dumps({"kind": "table", "columns": columns})}))
    return SimpleNamespace(path=path, columns=columns, x=xte, y=yte, expected=pipe.predict(xte))


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A linear regressor on scikit-learn's diabetes (no metadata: the task declares the preprocessing)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    d = load_diabetes()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0)
    reg = LinearRegression().fit(xtr, ytr)
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.onnx"
    path.write_bytes(to_onnx(reg, xtr[:1].astype(np.float32), target_opset=17).SerializeToString())
    return SimpleNamespace(path=path, columns=list(d.feature_names), x=xte, y=yte, expected=reg.predict(xte))


def rows(columns: list[str], x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Table items; the features are written in reverse column order (the declared order must win)."""
    return [{"id": f"row-{i}", "features": {c: float(v) for c, v in reversed(list(zip(columns, xi)))},
             "label": yi.item()} for i, (xi, yi) in enumerate(zip(x, y))]


def npy(folder: Path, name: str, arr: np.ndarray, **item: Any) -> dict[str, Any]:
    path = folder / f"{name}.npy"
    np.save(path, arr)
    return {"md5": name, "key": f"dam/files/{name}", "local_path": str(path), **item}


def lines(ev: Any) -> list[OutcomeLine]:
    return [OutcomeLine.model_validate_json(x) for x in ev.outcomes_jsonl().decode().splitlines()]


def test_wine_rows_with_string_classes_and_columns_from_the_model(wine: SimpleNamespace) -> None:
    items = rows(wine.columns, wine.x, wine.y)
    items[0]["features"]["alcohol"] = str(items[0]["features"]["alcohol"])  # a CSV cell: a number as text
    ev = evaluate(wine.path, items, None)  # the preprocessing comes from the model's metadata
    out = lines(ev)
    assert [o.prediction for o in out] == wine.expected.tolist()
    assert ev.metrics["accuracy"] == pytest.approx(float(np.mean(wine.expected == wine.y)))
    assert ev.metrics["samples"] == len(items) and ev.classes == sorted(WINE_CLASSES.tolist())
    assert sum(map(sum, ev.confusion)) == len(items)
    assert all(o.features == it["features"] and o.sample_id == it["id"] and o.data_ref is None
               for o, it in zip(out, items))
    assert [o.correct for o in out] == (wine.expected == wine.y).tolist()


def test_regression_metrics_match_numpy(diabetes: SimpleNamespace) -> None:
    items = rows(diabetes.columns, diabetes.x, diabetes.y)
    prep = parse_preprocess({"kind": "table", "columns": diabetes.columns, "target": "regression",
                             "tolerance": 50}, where="params.preprocess")
    ev = evaluate(diabetes.path, items, prep)
    out = lines(ev)
    pred = np.array([o.prediction for o in out])
    truth = diabetes.y.astype(np.float64)
    np.testing.assert_allclose(pred, diabetes.expected, rtol=1e-4)  # float32 inference vs scikit-learn
    err = np.abs(pred - truth)
    assert ev.metrics["mae"] == pytest.approx(err.mean(), rel=1e-9)
    assert ev.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)), rel=1e-9)
    assert ev.metrics["r2"] == pytest.approx(1 - np.sum((truth - pred) ** 2) / np.sum((truth - truth.mean()) ** 2),
                                             rel=1e-9)
    from sklearn.metrics import mean_absolute_error, r2_score

    assert ev.metrics["r2"] == pytest.approx(r2_score(truth, diabetes.expected), rel=1e-4)
    assert ev.metrics["mae"] == pytest.approx(mean_absolute_error(truth, diabetes.expected), rel=1e-4)
    assert ev.metrics["samples"] == len(items) and ev.metrics["errors"] == np.count_nonzero(err > 50) > 0
    assert [o.error for o in out] == pytest.approx(err.tolist())
    assert [o.correct for o in out] == (err <= 50).tolist() and all(o.ground_truth == t for o, t in zip(out, truth))
    assert all(o.features == it["features"] for o, it in zip(out, items))
    assert ev.report()["confusion"] == [] and ev.classes == []


def test_regression_target_and_tolerance_from_task_params(diabetes: SimpleNamespace) -> None:
    items = rows(diabetes.columns, diabetes.x[:20], diabetes.y[:20])
    prep = Preprocess(kind="table", columns=diabetes.columns)
    ev = evaluate(diabetes.path, items, prep, params={"target": "regression", "tolerance": 1e9})
    assert ev.metrics["errors"] == 0 and "mae" in ev.metrics and "accuracy" not in ev.metrics
    with pytest.raises(InvalidPreprocess, match="tolerance"):
        evaluate(diabetes.path, items, prep, params={"target": "regression", "tolerance": -1})
    items[3]["label"] = "high"
    with pytest.raises(InvalidPreprocess, match="item 3 .* 'high', not a number"):
        evaluate(diabetes.path, items, prep, params={"target": "regression"})
    items[3]["label"] = "nan"  # parses as a float, but no metric could be stored or compared with it
    with pytest.raises(InvalidPreprocess, match="item 3 .* 'nan', not a number"):
        evaluate(diabetes.path, items, prep, params={"target": "regression"})


def test_a_regression_model_that_predicts_nan_names_the_item(diabetes: SimpleNamespace) -> None:
    """An empty cell is NaN; a model without its own imputer predicts NaN: refused, not NaN metrics (which no
    JSON column or event could hold)."""
    items = rows(diabetes.columns, diabetes.x[:5], diabetes.y[:5])
    items[2]["features"]["bmi"] = ""
    prep = Preprocess(kind="table", columns=diabetes.columns, target="regression", tolerance=10)
    with pytest.raises(InvalidPreprocess, match=r"predicted nan for item 2 \(row-2\) \(1 of 5 samples\)"):
        evaluate(diabetes.path, items, prep)


def test_table_rows_with_tensor_badcases(diabetes: SimpleNamespace, tmp_path: Path) -> None:
    """A tabular set plus feedback badcases stored as .npy input tensors: all scored alike."""
    items = rows(diabetes.columns, diabetes.x[:6], diabetes.y[:6])
    badcases = [uuid.uuid4() for _ in range(3)]
    items += [npy(tmp_path, f"bad{i}", diabetes.x[i], label=float(diabetes.y[i]), badcase_id=str(badcases[i - 6]))
              for i in range(6, 9)]
    prep = Preprocess(kind="table", columns=diabetes.columns, target="regression", tolerance=30)
    out = lines(evaluate(diabetes.path, items, prep))
    np.testing.assert_allclose([o.prediction for o in out], diabetes.expected[:9], rtol=1e-4)
    assert [o.badcase_id for o in out] == [None] * 6 + badcases
    assert [o.data_ref for o in out][6:] == ["bad6", "bad7", "bad8"]
    assert all(o.features is not None for o in out[:6]) and all(o.features is None for o in out[6:])


def test_string_labels_on_tensor_items(wine: SimpleNamespace, tmp_path: Path) -> None:
    items = [npy(tmp_path, f"w{i}", wine.x[i].astype(np.float64), label=wine.y[i]) for i in range(8)]
    out = lines(evaluate(wine.path, items, None))
    assert [o.prediction for o in out] == wine.expected[:8].tolist()


def png(folder: Path, name: str, pixels: np.ndarray, **item: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    path = folder / f"{name}.png"
    path.write_bytes(buf.getvalue())
    return {"md5": name, "key": f"dam/files/{name}", "local_path": str(path), **item}


def test_images_and_tensor_files_in_one_set(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(linear_classifier(64, 10, seed=0))
    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)  # the model's weights (same seed)
    rng = np.random.default_rng(7)
    items, expected = [], []
    for i in range(6):
        if i % 2 == 0:
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            x = pixels.reshape(-1).astype(np.float32) / 255
            items.append(png(tmp_path, f"img{i}", pixels))
        else:
            x = rng.normal(size=64)
            items.append(npy(tmp_path, f"t{i}", x))  # float64 on disk: cast to the model's float32
        expected.append(str(int(np.argmax(x.astype(np.float32) @ w))))
        items[-1]["label"] = expected[-1] if i < 4 else "none"
    ev = evaluate(tmp_path / "m.onnx", items, Preprocess(size=(8, 8)))
    out = lines(ev)
    assert [o.prediction for o in out] == expected
    assert [o.correct for o in out] == [True] * 4 + [False] * 2 and ev.metrics["errors"] == 2


def test_tensor_files_without_declared_preprocessing(tmp_path: Path) -> None:
    """.npz items feed a two-input model by array name; nothing needs declaring for tensor files."""
    (tmp_path / "m.onnx").write_bytes(two_input_classifier(seed=1))
    w = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    rng = np.random.default_rng(3)
    items, expected = [], []
    for i in range(5):
        a, b = rng.normal(size=3).astype(np.float32), rng.normal(size=2).astype(np.float32)
        np.savez(tmp_path / f"s{i}.npz", A=a, B=b)
        items.append({"md5": f"s{i}", "local_path": str(tmp_path / f"s{i}.npz"), "label": i % 3})
        expected.append(str(int(np.argmax(np.concatenate([a, b]) @ w))))
    out = lines(evaluate(tmp_path / "m.onnx", items, None))
    assert [o.prediction for o in out] == expected
    np.savez(tmp_path / "bad.npz", A=np.zeros(3), C=np.zeros(2))
    with pytest.raises(InvalidPreprocess, match=r"item 5 \(bad\).*do not name the model inputs"):
        evaluate(tmp_path / "m.onnx", [*items, {"md5": "bad", "local_path": str(tmp_path / "bad.npz")}], None)


def test_tensor_of_another_shape_or_with_objects_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(linear_classifier(64, 10))
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(x\): a tensor of shape \[1, 64\].*\[64\]"):
        evaluate(tmp_path / "m.onnx", [npy(tmp_path, "x", np.zeros((1, 64)), label="1")], None)
    marker = Path("/tmp/mtt-pickle-was-executed")
    marker.unlink(missing_ok=True)
    np.save(tmp_path / "obj.npy", np.array([_Boom()], dtype=object), allow_pickle=True)  # a pickle inside
    item = {"md5": "obj", "local_path": str(tmp_path / "obj.npy"), "label": "1"}
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(obj\): array \(npy\) holds object values"):
        evaluate(tmp_path / "m.onnx", [item], None)
    assert not marker.exists()


def test_tensor_files_are_checked_on_their_headers_before_loading(tmp_path: Path) -> None:
    """What a served input or an upload could hold: a shape header of terabytes, text, thousands of arrays —
    each refused from its header, before any data is read or decompressed."""
    (tmp_path / "m.onnx").write_bytes(linear_classifier(64, 10))
    with (tmp_path / "huge.npy").open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        fh.write(b"\0" * 64)
    huge = {"md5": "huge", "local_path": str(tmp_path / "huge.npy"), "label": "1"}
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(huge\): its arrays would take 8000000000000 bytes"):
        evaluate(tmp_path / "m.onnx", [huge], None)
    text = npy(tmp_path, "text", np.array(["a"] * 64), label="1")
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(text\): array \(npy\) holds <U1 values"):
        evaluate(tmp_path / "m.onnx", [text], None)
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as zf:
        one = io.BytesIO()
        np.save(one, np.zeros(1))
        for i in range(10_000):
            zf.writestr(f"a{i}.npy", one.getvalue())
    many = {"md5": "many", "local_path": str(tmp_path / "many.npz"), "label": "1"}
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(many\) holds 10000 arrays"):
        evaluate(tmp_path / "m.onnx", [many], None)
    from mtt.evaluator.compat import incompatibility

    assert "holds 10000 arrays" in str(incompatibility([many], tmp_path / "m.onnx", {}))
    assert "8000000000000 bytes" in str(incompatibility([huge], tmp_path / "m.onnx", {}))


def test_images_or_rows_without_declared_preprocessing(tmp_path: Path, wine: SimpleNamespace) -> None:
    (tmp_path / "m.onnx").write_bytes(linear_classifier(64, 10))
    img = png(tmp_path, "i", np.zeros((8, 8), dtype=np.uint8), label="0")
    with pytest.raises(InvalidPreprocess, match=r"item 0 \(i\) is an image and no preprocessing is declared"):
        evaluate(tmp_path / "m.onnx", [img], None)
    with pytest.raises(InvalidPreprocess, match=r"is an image; the declared preprocessing is for table items"):
        evaluate(wine.path, [img], None)
    row = rows(wine.columns, wine.x[:1], wine.y[:1])[0]
    with pytest.raises(InvalidPreprocess, match=r"is a table row; the declared preprocessing is for image items"):
        evaluate(tmp_path / "m.onnx", [row], Preprocess(size=(8, 8)))
    del row["features"]["proline"]
    with pytest.raises(InvalidPreprocess, match=r"has no column 'proline'"):
        evaluate(wine.path, [row], None)


def test_preprocess_json_of_before_kinds_still_parses() -> None:
    p = parse_preprocess('{"size": [8, 8], "layout": "nchw"}', where="x")
    assert p.kind == "image" and p.sample_shape() == (1, 8, 8) and p.target == "classification"
    with pytest.raises(InvalidPreprocess, match="needs columns"):
        parse_preprocess({"kind": "table"}, where="x")
    with pytest.raises(InvalidPreprocess, match="needs size"):
        parse_preprocess({"mode": "L"}, where="x")


async def test_images_and_tensors_through_a_runner(mtt, settings, start_runner) -> None:  # type: ignore[no-untyped-def]
    """Through the object store and a runner: DAM-style items, two PNGs and a served input kept as a .npy."""
    import hashlib

    from mlife_shared.objectstore import make_store
    from mlife_shared.objectstore.base import iterate, read_all
    from tests.support.mtt import task_in
    from tests.support.outbox import outbox_events

    store = make_store(settings)
    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    rng = np.random.default_rng(11)
    manifest, expected = [], []
    for i in range(3):
        if i < 2:
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(buf, format="PNG")
            x, path = pixels.reshape(-1).astype(np.float32) / 255, f"img/{i}.png"
        else:
            x = rng.normal(size=64).astype(np.float32)
            buf = io.BytesIO()
            np.save(buf, x)
            path = "feedback/input.npy"
        data = buf.getvalue()
        md5 = hashlib.md5(data).hexdigest()
        await store.put(f"dam/files/{md5}", iterate(data))
        expected.append(str(int(np.argmax(x @ w))))
        manifest.append(json.dumps({"md5": md5, "key": f"dam/files/{md5}", "path": path,
                                    "label": expected[-1] if i != 1 else "none"}))
    ds = str(uuid.uuid4())
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await store.put(key, iterate(("\n".join(manifest) + "\n").encode()))
    await store.put("models/lin/model.onnx", iterate(linear_classifier(64, 10, seed=0)))
    r = await mtt.post("/tasks", json={
        "kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}], "run": True,
        "model": {"name": "lin", "version": "1", "object_key": "models/lin/model.onnx"},
        "params": {"preprocess": {"size": [8, 8]}}})
    assert r.status_code == 201, r.text
    start_runner("runner-tensors")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    (tc,) = [e["data"] for e in await outbox_events(settings, "testing.completed")]
    assert tc["metrics"]["samples"] == 3 and tc["metrics"]["errors"] == 1
    out = [OutcomeLine.model_validate_json(x)
           for x in (await read_all(await store.get(tc["outcomes_key"]))).decode().splitlines()]
    assert [o.prediction for o in out] == expected and [o.correct for o in out] == [True, False, True]
