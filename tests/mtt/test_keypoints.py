"""Keypoint evaluator: NME and PCK worked out by hand on a model with constant points (scaled back to each original
image), then a real testing task whose far-off image becomes a badcase in BAM."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import read_all
from mlife_shared.plugins.seams.evaluators import EvaluationRefused
from mtt.config import Settings
from mtt.evaluator import examples
from mtt.evaluator.plugins import Keypoints
from tests.mtt.image_sets import filed_badcases, put_image_set, put_model
from tests.mtt.test_train_and_test import bam_badcases_from
from tests.support.mtt import task_in
from tests.support.outbox import outbox_events

POINTS = np.array([[[1, 1], [3, 3]]], dtype=np.float32)  # in the 4x4 input's pixels
IMAGES = [np.zeros((4, 4)), np.zeros((8, 8))]  # the second at 8x8: the points scale by 2 → (2, 2), (6, 6)
TRUTH = [{"keypoints": [[1, 1], [3, 3]]}, {"keypoints": [[2, 2], [6, 8]]}]
FAR = 2 / math.hypot(4, 6)  # the second image's second point: 2 px off, its truth's box is 4 x 6
PARAMS = {"evaluator": "keypoints", "preprocess": {**examples.IMAGE, "resize": True},
          "keypoints": {"names": ["left_eye", "right_eye"]}}


def model() -> bytes:
    return examples.constant_outputs({"points": POINTS}, [1, 1, 4, 4])


def test_keypoint_errors_by_hand(tmp_path: Path) -> None:
    request = examples.image_request(tmp_path, model(), IMAGES, TRUTH, {k: PARAMS[k] for k in ("preprocess", "keypoints")})
    result = Keypoints().evaluate(request)
    assert result.metrics["nme"] == pytest.approx((0 + FAR / 2) / 2)
    assert result.metrics["pck"] == 0.75 and (result.metrics["samples"], result.metrics["errors"]) == (2.0, 1.0)
    assert result.report["per_class"]["right_eye"] == {"nme": pytest.approx(FAR / 2), "pck": 0.5, "support": 2}
    second = result.outcomes[1]
    assert second["prediction"] == {"keypoints": [[2.0, 2.0], [6.0, 6.0]], "nme": round(FAR / 2, 4), "pck": 0.5}
    assert second["correct"] is False and result.outcomes[0]["correct"] is True


def test_inter_ocular_normalisation_skips_unlabelled_points(tmp_path: Path) -> None:
    truth = [{"keypoints": [1, 1, 2, 3, 3, 2]}, {"keypoints": [[1, 1, 2], [3, 4, 2], [0, 0, 0]]}]
    three = examples.constant_outputs({"points": np.array([[[1, 1], [3, 3], [9, 9]]], dtype=np.float32)},
                                      [1, 1, 4, 4])
    two = examples.image_request(tmp_path, model(), IMAGES[:1] * 2, [truth[0], truth[0]],
                                 {"keypoints": {"normalize": [0, 1], "pck_threshold": 0.3}})
    assert Keypoints().evaluate(two).metrics["nme"] == 0.0
    request = examples.image_request(tmp_path, three, IMAGES[:1], truth[1:],
                                     {"keypoints": {"normalize": [0, 1], "pck_threshold": 0.2}})
    result = Keypoints().evaluate(request)
    # only the two labelled points count; the distance between them (√13) normalises the 1 px error of the second
    assert result.metrics["nme"] == pytest.approx((0 + 1 / math.sqrt(13)) / 2)
    assert result.metrics["pck"] == 0.5 and list(result.report["per_class"]) == ["0", "1"]


def test_keypoints_refuse_what_they_cannot_score(tmp_path: Path) -> None:
    request = examples.image_request(tmp_path, model(), IMAGES[:1], [{"label": "face"}], {})
    assert str(Keypoints().incompatibility(request)).endswith("no keypoints annotation: set it to "
                                                              '{"keypoints": [[x, y], …]} (or [[x, y, v], …], or '
                                                              "COCO's flat list)")
    request.items[0]["annotation"] = {"keypoints": [[1, 1], [2, 2], [3, 3]]}
    with pytest.raises(EvaluationRefused, match="the model gives 2 keypoints, the annotation 3"):
        Keypoints().evaluate(request)


async def test_keypoint_task_files_the_far_off_image_as_a_badcase(
        mtt: httpx.AsyncClient, settings: Settings, start_runner, make_database) -> None:  # type: ignore[no-untyped-def]
    ds, key = await put_image_set(settings, IMAGES, TRUTH)
    r = await mtt.post("/tasks", json={"kind": "test", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                       "run": True, "model": await put_model(settings, "kp", model()),
                                       "params": PARAMS})
    assert r.status_code == 201, r.text
    start_runner("runner-kp")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["nme"] == pytest.approx(FAR / 4) and done["metrics"]["errors"] == 1.0
    report = (await mtt.get(f"/tasks/{done['id']}/report")).json()
    assert report["weakest_classes"][0]["class"] == "right_eye"
    (event,) = [e for e in await outbox_events(settings, "testing.completed") if e["data"]["task_id"] == done["id"]]
    raw = await read_all(await make_store(settings).get(event["data"]["outcomes_key"]))
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    bam_db = await make_database("bam.migrations")
    assert await bam_badcases_from(settings, event, bam_db) == 1
    (badcase,) = await filed_badcases(bam_db)
    assert badcase["data_md5"] == lines[1]["data_ref"]
    assert badcase["ground_truth"] == {"keypoints": [[2.0, 2.0], [6.0, 8.0]]}
