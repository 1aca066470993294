"""Object detection in the built-in evaluator: mAP@0.5 and per-image TP / FP / FN, on a model whose outputs
are known (constant boxes), so every number can be worked out by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from mtt.evaluator.detection import DetectionParams, average_precision, evaluate_detection, iou
from mtt.evaluator.preprocess import Preprocess


def constant_detector() -> bytes:
    consts = {"boxes": np.array([[0, 0, 4, 4], [4, 4, 8, 8]], dtype=np.float32),
              "scores": np.array([0.9, 0.8], dtype=np.float32), "labels": np.array([1, 2], dtype=np.int64)}
    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, f"{k}_value"))
             for k, v in consts.items()]
    outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [2, 4]),
               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2]),
               helper.make_tensor_value_info("labels", TensorProto.INT64, [2])]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 8, 8])],
                              outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_iou_and_ap_by_hand() -> None:
    a = np.array([[0, 0, 4, 4]], dtype=float)
    assert iou(a, np.array([[0, 0, 4, 4], [2, 0, 6, 4], [8, 8, 9, 9]], dtype=float)).round(4).tolist() == \
        [[1.0, 0.3333, 0.0]]
    assert average_precision([(0.9, True), (0.8, False), (0.7, True)], 2) == 1 * 0.5 + (2 / 3) * 0.5
    assert average_precision([], 3) == 0.0


def test_detection_metrics_and_outcomes(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(constant_detector())
    items = []
    annotations = [{"boxes": [[0, 0, 4, 4]], "labels": [1]},  # TP (class 1) + FP (class 2)
                   [{"bbox": [0, 0, 4, 4], "label": 1}, {"bbox": [4, 4, 4, 4], "label": 2}],  # COCO style: 2 TP
                   {"boxes": [[0, 0, 8, 8]], "labels": [3]}]  # FN (class 3) + 2 FP
    for i, ann in enumerate(annotations):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8), mode="L").save(buf, format="PNG")
        path = tmp_path / f"{i}.png"
        path.write_bytes(buf.getvalue())
        items.append({"md5": f"{i:032x}", "local_path": str(path), "annotation": ann,
                      "extra": {"badcase_id": "b" if i == 2 else None}})
    prep = Preprocess(size=(8, 8), mode="L", layout="nchw")
    ev = evaluate_detection(tmp_path / "model.onnx", items, prep, DetectionParams())
    # class 1: hits 0.9 T, 0.9 T, 0.9 F of 2 → AP 1.0; class 2: 0.8 F, 0.8 T, 0.8 F of 1 → AP 0.5; class 3: 0
    assert ev.per_class["1"]["ap"] == 1.0 and ev.per_class["2"]["ap"] == 0.5 and ev.per_class["3"]["ap"] == 0.0
    assert abs(ev.metrics["map50"] - 0.5) < 1e-9
    assert (ev.metrics["tp"], ev.metrics["fp"], ev.metrics["fn"]) == (3.0, 3.0, 1.0)
    lines = [json.loads(x) for x in ev.outcomes_jsonl().decode().splitlines()]
    assert [(x["prediction"]["tp"], x["prediction"]["fp"], x["prediction"]["fn"], x["correct"]) for x in lines] == \
        [(1, 1, 0, False), (2, 0, 0, True), (0, 2, 1, False)]
    assert lines[2]["badcase_id"] == "b" and lines[1]["ground_truth"]["labels"] == ["1", "2"]


async def test_detection_task_through_a_runner(mtt, settings, start_runner) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import uuid

    from mlife_shared.objectstore import make_store
    from mlife_shared.objectstore.base import iterate
    from tests.support.mtt import task_in
    from tests.support.outbox import outbox_events

    store = make_store(settings)
    lines = []
    for i, ann in enumerate([{"boxes": [[0, 0, 4, 4]], "labels": [1]}, {"boxes": [[4, 4, 8, 8]], "labels": [2]}]):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8), 50 * i, dtype=np.uint8), mode="L").save(buf, format="PNG")
        md5 = hashlib.md5(buf.getvalue()).hexdigest()
        await store.put(f"dam/files/{md5}", iterate(buf.getvalue()))
        lines.append(json.dumps({"md5": md5, "key": f"dam/files/{md5}", "annotation": ann}))
    ds = str(uuid.uuid4())
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await store.put(key, iterate(("\n".join(lines) + "\n").encode()))
    await store.put("models/det/model.onnx", iterate(constant_detector()))
    r = await mtt.post("/tasks", json={
        "kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}], "run": True,
        "model": {"name": "det", "version": "1", "object_key": "models/det/model.onnx"},
        "params": {"evaluator": "detection", "preprocess": {"size": [8, 8], "layout": "nchw"}}})
    assert r.status_code == 201, r.text
    start_runner("runner-det")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    # class 1: 0.9 T (image 0), 0.9 F (image 1) of 1 → AP 1; class 2: 0.8 F, 0.8 T of 1 → AP 0.5
    assert done["metrics"]["map50"] == 0.75 and (done["metrics"]["tp"], done["metrics"]["fp"]) == (2.0, 2.0)
    (tc,) = [e["data"] for e in await outbox_events(settings, "testing.completed")]
    assert tc["metrics"]["map50"] == 0.75 and tc["metrics"]["errors"] == 2.0
    report = (await mtt.get(f"/tasks/{done['id']}/report")).json()
    assert report["per_class"]["2"]["ap"] == 0.5 and report["confusion"] == []
