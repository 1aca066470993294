"""Semantic segmentation evaluator: mIoU, per-class IoU and pixel accuracy worked out by hand on a threshold model
(class 1 where a pixel is bright), then a real testing task over PNG masks in S3 whose poorly segmented image
becomes a badcase in BAM."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlife_shared.events.contracts import TestingOutcomeLine as OutcomeLine
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import read_all
from mlife_shared.plugins.seams.evaluators import EvaluationRequest
from mtt.config import Settings
from mtt.evaluator import examples
from mtt.evaluator.plugins import Segmentation
from tests.mtt.image_sets import filed_badcases, png_bytes, put_file, put_image_set, put_model
from tests.mtt.test_train_and_test import bam_badcases_from
from tests.support.mtt import task_in
from tests.support.outbox import outbox_events

HALF = np.zeros((4, 4))
HALF[:, 2:] = 255  # right half bright: the model says class 1 there
TOP_ROW = np.zeros((4, 4))
TOP_ROW[0] = 1
TOP_ROW[3, 3] = 255  # ignored
IMAGES = [HALF, np.zeros((4, 4)), np.full((4, 4), 255)]
MASKS = [(HALF > 0).astype(np.uint8), TOP_ROW, np.ones((8, 8))]  # the last at 8x8: resized to the output's 4x4
# cm (truth rows, prediction columns): A [[8,0],[0,8]], B [[11,0],[4,0]] (one pixel ignored), C [[0,0],[0,16]]
B_MIOU = (11 / 15 + 0) / 2
PARAMS = {"evaluator": "segmentation", "preprocess": examples.IMAGE,
          "segmentation": {"classes": ["background", "road"]}}


def by_hand_checks(metrics: dict[str, float], per_class: dict[str, dict[str, float]]) -> None:
    assert metrics["miou"] == pytest.approx((19 / 23 + 24 / 28) / 2)
    assert metrics["pixel_accuracy"] == pytest.approx(43 / 47)
    assert metrics["mean_sample_miou"] == pytest.approx((1 + B_MIOU + 1) / 3)
    assert (metrics["samples"], metrics["errors"]) == (3.0, 1.0)
    assert per_class["road"]["iou"] == pytest.approx(24 / 28) and per_class["road"]["support"] == 28
    assert per_class["background"]["iou"] == pytest.approx(19 / 23)


def test_segmentation_metrics_by_hand(tmp_path: Path) -> None:
    masks = [examples.png(tmp_path, f"mask{i}.png", m) for i, m in enumerate(MASKS)]
    request = examples.image_request(tmp_path, examples.threshold_segmenter(), IMAGES,
                                     [{"mask": f"m{i}"} for i in range(3)], {"segmentation": PARAMS["segmentation"]},
                                     [{"mask": m} for m in masks])
    result = Segmentation().evaluate(request)
    by_hand_checks(result.metrics, result.report["per_class"])
    lines = [OutcomeLine.model_validate(o) for o in result.outcomes]
    assert [ln.correct for ln in lines] == [True, False, True]
    assert lines[1].prediction == {"miou": round(B_MIOU, 3), "pixel_accuracy": round(11 / 15, 3),
                                   "iou": {"background": round(11 / 15, 3), "road": 0.0}, "classes": ["background"]}
    assert lines[1].ground_truth == {"mask": "m1", "classes": ["background", "road"]}


def test_segmentation_refuses_what_it_cannot_score(tmp_path: Path) -> None:
    request = examples.image_request(tmp_path, examples.threshold_segmenter(), [HALF], [{"label": "x"}], {})
    assert Segmentation().incompatibility(request) == \
        'item 0 (00000000000000000000000000000000): no ground-truth mask: set its annotation to {"mask": "<md5 of ' \
        'the PNG mask>"}'
    bad = EvaluationRequest(request.model_path, request.items, {**request.params, "segmentation": {"miou": 2}})
    assert "params.segmentation is invalid: miou: Extra inputs are not permitted" in str(
        Segmentation().incompatibility(bad))
    assert "declare params.preprocess" in str(Segmentation().incompatibility(
        EvaluationRequest(request.model_path, request.items, {})))


async def test_segmentation_task_files_the_poor_image_as_a_badcase(
        mtt: httpx.AsyncClient, settings: Settings, start_runner, make_database) -> None:  # type: ignore[no-untyped-def]
    masks = [await put_file(settings, png_bytes(m)) for m in MASKS]
    ds, key = await put_image_set(settings, IMAGES, [{"mask": md5} for md5 in masks])
    model = await put_model(settings, "seg", examples.threshold_segmenter())
    r = await mtt.post("/tasks", json={"kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                       "run": True, "model": model, "params": PARAMS})
    assert r.status_code == 201, r.text
    start_runner("runner-seg")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    report = (await mtt.get(f"/tasks/{done['id']}/report")).json()
    by_hand_checks(done["metrics"], report["per_class"])
    assert report["weakest_classes"][0]["class"] == "background"
    (event,) = [e for e in await outbox_events(settings, "testing.completed") if e["data"]["task_id"] == done["id"]]
    raw = await read_all(await make_store(settings).get(event["data"]["outcomes_key"]))
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    assert [x["correct"] for x in lines] == [True, False, True]
    bam_db = await make_database("bam.migrations")
    assert await bam_badcases_from(settings, event, bam_db) == 1
    (badcase,) = await filed_badcases(bam_db)
    assert badcase["data_md5"] == lines[1]["data_ref"] and badcase["ground_truth"]["mask"] == masks[1]
    assert badcase["prediction"]["miou"] == round(B_MIOU, 3)


async def test_a_set_without_masks_is_incompatible_before_any_run(
        mtt: httpx.AsyncClient, settings: Settings, start_runner) -> None:  # type: ignore[no-untyped-def]
    ds, key = await put_image_set(settings, [HALF], [{"boxes": []}])
    model = await put_model(settings, "seg2", examples.threshold_segmenter())
    r = await mtt.post("/tasks", json={"kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                       "run": True, "model": model, "params": PARAMS})
    start_runner("runner-seg2")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "failed" and done["error"].startswith("incompatible: item 0 (") and \
        done["error"].endswith('no ground-truth mask: set its annotation to {"mask": "<md5 of the PNG mask>"}')
