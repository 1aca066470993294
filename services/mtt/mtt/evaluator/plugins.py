"""The built-in evaluators as plugins of the `evaluators` seam (registered in MTT's pyproject.toml under
`mlife.evaluators`, looked up through the plugin registry like any outside one), and which one a task runs:
`params.evaluator`, else inferred as before (regression when `params.target` or the declared preprocessing says
so, else classification)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlife_shared.errors import MLifeError
from mlife_shared.plugins.seams.evaluators import EvaluationRefused, EvaluationRequest, EvaluationResult
from mtt.evaluator import examples
from mtt.evaluator.compat import incompatibility
from mtt.evaluator.evaluate import Evaluation, declared_in_model, evaluate, scoring
from mtt.evaluator.preprocess import parse_preprocess

API = ">=1,<2"


def chosen(params: dict[str, Any], model_path: Path) -> tuple[str, str]:
    """(the evaluator's name, how it was chosen)."""
    name = params.get("evaluator")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise EvaluationRefused(f"params.evaluator is {name!r}: name an evaluator (GET /plugins lists them)")
        return name, "params.evaluator"
    target, _ = scoring(None, params)
    if target is None:
        prep = parse_preprocess(params["preprocess"], where="params.preprocess") if "preprocess" in params \
            else declared_in_model(model_path)
        target = prep.target if prep is not None else "classification"
    return target, "inferred"


def as_result(ev: Evaluation) -> EvaluationResult:
    return EvaluationResult(metrics=ev.metrics, report=ev.report(), outcomes_jsonl=ev.outcomes_jsonl())


class _Onnx:
    api = API
    model_formats = ("onnx",)

    def files(self, item: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        return {}


class Classification(_Onnx):
    """Accuracy, per-class precision / recall / F1 and the confusion matrix; a wrong label is a misprediction."""

    name = "classification"
    description = "class labels (or scores' argmax) of images, table rows or tensor files: accuracy, per-class " \
                  "precision / recall / F1, confusion matrix"

    def _params(self, request: EvaluationRequest) -> dict[str, Any]:
        return {**request.params, "target": self.name}

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        return incompatibility(request.items, request.model_path, self._params(request))

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        params = self._params(request)
        prep = parse_preprocess(params["preprocess"], where="params.preprocess") if "preprocess" in params else None
        return as_result(evaluate(request.model_path, request.items, prep, batch_size=request.batch_size,
                                  cancel=request.cancel, params=params))

    def example(self, folder: Path) -> EvaluationRequest:
        return examples.table_request(folder, examples.linear(3, 3, argmax=True),
                                      [([1, 0, 0], "0"), ([0, 0, 1], "2"), ([0, 1, 0], "0")], "classification")


class Regression(Classification):
    """MAE, RMSE, R²; a sample whose error exceeds `params.tolerance` is a misprediction."""

    name = "regression"
    description = "numeric predictions: MAE, RMSE, R²; a sample off by more than params.tolerance is a misprediction"

    def example(self, folder: Path) -> EvaluationRequest:
        return examples.table_request(folder, examples.linear(1, 1, argmax=False),
                                      [([1.0], 1.0), ([2.0], 2.5)], "regression")


class Detection(_Onnx):
    """mAP@IoU per class, precision / recall; an image with a false or missed box is a misprediction."""

    name = "detection"
    description = "object detection (boxes, scores, labels outputs): mAP@IoU, precision, recall, per-image TP/FP/FN"

    def _settings(self, request: EvaluationRequest) -> Any:
        from mtt.evaluator.detection import DetectionParams
        from mtt.evaluator.onnx_image import own_settings

        return own_settings(DetectionParams, request, "detection")

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        from mtt.evaluator.detection import gt_boxes
        from mtt.evaluator.onnx_image import image_incompatibility

        def missing(item: dict[str, Any]) -> str | None:
            try:
                gt_boxes(item)
            except MLifeError as exc:
                return str(exc.message)
            return None

        try:
            det = self._settings(request)
        except MLifeError as exc:
            return str(exc.message)
        return image_incompatibility(request, self.name, [det.boxes_output, det.scores_output, det.labels_output],
                                     missing)

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        from mtt.evaluator.detection import evaluate_detection
        from mtt.evaluator.onnx_image import image_prep

        prep = image_prep(request.params, request.model_path, self.name)
        return as_result(evaluate_detection(request.model_path, request.items, prep, self._settings(request),
                                            cancel=request.cancel))

    def example(self, folder: Path) -> EvaluationRequest:
        model = examples.constant_outputs({"boxes": np.array([[0, 0, 2, 2]], dtype=np.float32),
                                           "scores": np.array([0.9], dtype=np.float32),
                                           "labels": np.array([1], dtype=np.int64)}, [1, 1, 4, 4])
        return examples.image_request(folder, model, [np.zeros((4, 4)), np.full((4, 4), 255)],
                                      [{"boxes": [[0, 0, 2, 2]], "labels": [1]}, {"boxes": [], "labels": []}], {})


class Segmentation(_Onnx):
    """mIoU, per-class IoU, pixel accuracy against PNG masks; an image below the mIoU threshold is a misprediction."""

    name = "segmentation"
    description = "semantic segmentation against PNG masks of class indices: mIoU, per-class IoU, pixel accuracy; " \
                  "an image below params.segmentation.miou_threshold is a misprediction"

    def files(self, item: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        from mtt.evaluator.segmentation import mask_key

        key = mask_key(item)
        return {"mask": key} if key else {}

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        from mtt.evaluator.onnx_image import image_incompatibility
        from mtt.evaluator.segmentation import mask_key, segmentation_params

        try:
            params = segmentation_params(request)
        except MLifeError as exc:
            return str(exc.message)
        return image_incompatibility(request, self.name, [params.output] if params.output else [],
                                     lambda it: None if mask_key(it) else
                                     'no ground-truth mask: set its annotation to {"mask": "<md5 of the PNG mask>"}')

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        from mtt.evaluator.segmentation import evaluate_segmentation

        return evaluate_segmentation(request)

    def example(self, folder: Path) -> EvaluationRequest:
        bright = np.zeros((4, 4))
        bright[:, 2:] = 255
        masks = [examples.png(folder, "mask0.png", (bright > 0).astype(np.uint8)),
                 examples.png(folder, "mask1.png", np.ones((4, 4)))]
        return examples.image_request(folder, examples.threshold_segmenter(), [bright, np.zeros((4, 4))],
                                      [{"mask": "0" * 31 + "a"}, {"mask": "0" * 31 + "b"}], {},
                                      [{"mask": masks[0]}, {"mask": masks[1]}])


class Keypoints(_Onnx):
    """NME and PCK@threshold, per keypoint too; an image whose NME exceeds the limit is a misprediction."""

    name = "keypoints"
    description = "keypoints / landmarks ([1, K, 2] points): mean normalised error, PCK@threshold, per keypoint; " \
                  "an image whose error exceeds params.keypoints.max_error is a misprediction"

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        from mtt.evaluator.keypoints import keypoint_params, missing_truth
        from mtt.evaluator.onnx_image import image_incompatibility

        try:
            params = keypoint_params(request)
        except MLifeError as exc:
            return str(exc.message)
        return image_incompatibility(request, self.name, [params.output] if params.output else [], missing_truth)

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        from mtt.evaluator.keypoints import evaluate_keypoints

        return evaluate_keypoints(request)

    def example(self, folder: Path) -> EvaluationRequest:
        model = examples.constant_outputs({"points": np.array([[[1, 1], [3, 3]]], dtype=np.float32)}, [1, 1, 4, 4])
        return examples.image_request(folder, model, [np.zeros((4, 4)), np.zeros((4, 4))],
                                      [{"keypoints": [[1, 1], [3, 3]]}, {"keypoints": [[0, 3], [3, 0]]}], {})
