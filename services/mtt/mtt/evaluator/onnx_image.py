"""One image at a time through an ONNX model with the declared image preprocessing: what the segmentation and
keypoint evaluators share (settings under `params.<evaluator>`, the compatibility check, the session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from mlife_shared.errors import MLifeError
from mlife_shared.onnx_safety import inspect_onnx
from mlife_shared.plugins.seams.evaluators import EvaluationRefused, EvaluationRequest
from mtt.evaluator.compat import incompatibility
from mtt.evaluator.evaluate import declared_in_model
from mtt.evaluator.preprocess import Preprocess, main_input, parse_preprocess
from mtt.evaluator.tensor import item_ref

S = TypeVar("S", bound=BaseModel)


def own_settings(cls: type[S], request: EvaluationRequest, name: str) -> S:
    """`params.<name>` as the evaluator's settings model; a 422 naming each wrong field."""
    try:
        return cls.model_validate(request.own_params(name))
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EvaluationRefused(f"params.{name} is invalid: {errs}") from exc


def image_prep(params: dict[str, Any], model_path: Path, evaluator: str) -> Preprocess:
    """The declared image preprocessing (task params, else the model's metadata): never guessed."""
    prep = parse_preprocess(params["preprocess"], where="params.preprocess") if "preprocess" in params \
        else declared_in_model(model_path)
    if prep is None or prep.kind != "image":
        raise EvaluationRefused(f"the {evaluator} evaluator feeds images: declare params.preprocess "
                                '{"size": [height, width], "layout": "nchw", …} (or the model\'s mlife.preprocess)')
    return prep


class ImageModel:
    """The model's session, fed one image (an item's `local_path`) at a time; `outputs` default to the first."""

    def __init__(self, request: EvaluationRequest, evaluator: str, outputs: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.prep = image_prep(request.params, request.model_path, evaluator)
        info = inspect_onnx(request.model_path)  # rejects pickles and escaping external data; runs nothing
        self.input_name = main_input(self.prep, info.inputs).name
        names = [o.name for o in info.outputs]
        self.outputs = outputs or names[:1]
        missing = [o for o in self.outputs if o not in names]
        if missing:
            raise EvaluationRefused(f"the model has no output {missing[0]!r} (outputs: {names}); set "
                                    f"params.{evaluator}")
        self.session = ort.InferenceSession(str(request.model_path), providers=["CPUExecutionProvider"])
        self.image_size = (0, 0)  # (width, height) of the last image, before any resize

    @staticmethod
    def where(item: dict[str, Any], i: int) -> str:
        return item_ref(item, i)

    def run(self, item: dict[str, Any], i: int) -> list[np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        path = item.get("local_path")
        if not path:
            raise EvaluationRefused(f"{item_ref(item, i)} has no image file")
        try:
            with Image.open(path) as img:
                self.image_size = img.size
                x = self.prep.to_array(img)[None]
        except (UnidentifiedImageError, OSError) as exc:
            raise EvaluationRefused(f"{item_ref(item, i)} is not a readable image: {exc}") from exc
        return [np.asarray(o) for o in self.session.run(self.outputs, {self.input_name: x})]


def image_incompatibility(request: EvaluationRequest, evaluator: str, outputs: list[str],
                          truth_missing: Callable[[dict[str, Any]], str | None]) -> str | None:
    """Why the model cannot be scored on the items (the declared images, its outputs, each item's ground truth)."""
    try:
        prep = image_prep(request.params, request.model_path, evaluator)
        reason = incompatibility(request.items, request.model_path, {"preprocess": prep.model_dump()})
        if reason is not None:
            return reason
        names = [o.name for o in inspect_onnx(request.model_path).outputs]
        if missing := [o for o in outputs if o not in names]:
            return f"the model has no output {missing[0]!r} (outputs: {names}); set params.{evaluator}"
    except MLifeError as exc:
        return str(exc.message)
    for i, item in enumerate(request.items):
        if (why := truth_missing(item)) is not None:
            return f"{item_ref(item, i)}: {why}"
    return None
