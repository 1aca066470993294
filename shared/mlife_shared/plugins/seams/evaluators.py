"""The evaluators seam: how a testing task scores a model on its set (MTT).

A testing task without testing code of its own runs an evaluator in the MTT runner. The task names it
(`params.evaluator`), else MTT infers one as it always has: `regression` when `params.target` or the declared
preprocessing says so, else `classification`. The built-ins are `classification`, `regression`, `detection`,
`segmentation` and `keypoints`; an outside package adds one under the entry point group `mlife.evaluators`.

The runner hands the evaluator an `EvaluationRequest`: the model file, the set's items (DAM manifest items: `md5`,
`annotation`, `extra`, …; each with `local_path` when it has a data file, and `local_files` with the extra files the
evaluator asked for with `files`, e.g. a ground-truth mask), the task's params (an evaluator's own settings go under
`params[<its name>]`) and a cancel flag. It first asks `incompatibility` (a reason, or None: nothing is run yet, the
task fails as incompatible), then `evaluate` (in a worker thread), which returns an `EvaluationResult`: metrics
(name → number), a report (shown with the task) and one outcome per sample in the order of the items.

An outcome is a `TestingOutcomeLine` (`mlife_shared.events.contracts`): `sample_id`, `data_ref` (the item's md5 or
key), `ground_truth`, `prediction`, `correct`, `badcase_id` (the item's, when it came from the badcase test set).
Metric names are what MLflow takes (letters, digits, `_ - . : /` and spaces). MTT stores the outcomes and names them
in `testing.completed`; BAM reports each line with `correct: false` and no badcase
as a new badcase (prediction and ground truth are shown with it, and are part of what makes two reports the same
badcase: keep them small and stable, at most 64 KiB of JSON) and records the outcome of each line with a badcase.

Raise `EvaluationRefused` with what to fix when the model or the data do not fit (the task fails with that
message), and `EvaluationCancelled` when `request.cancel` is set (check it between batches).

Example (a complete plugin; `example` gives the conformance kit something to run)::

    import json
    from pathlib import Path
    from mlife_shared.plugins.seams.evaluators import (EvaluationCancelled, EvaluationRequest, EvaluationResult,
                                                       outcome)

    class ExactMatch:
        name = "exact-match"
        api = ">=1,<2"
        description = "a text model's output compared with the item's label"
        model_formats = ("json",)

        def files(self, item, params):
            return {}

        def incompatibility(self, request):
            return None if request.model_path.suffix == ".json" else "the model must be a JSON lookup table"

        def evaluate(self, request):
            table = json.loads(request.model_path.read_text())
            lines = []
            for i, item in enumerate(request.items):
                if request.cancel.is_set():
                    raise EvaluationCancelled()
                said = table.get(item["text"])
                lines.append(outcome(item, i, ground_truth=item["label"], prediction=said,
                                     correct=said == item["label"]))
            right = sum(line["correct"] for line in lines)
            return EvaluationResult(metrics={"accuracy": right / max(len(lines), 1), "samples": float(len(lines)),
                                             "errors": float(len(lines) - right)}, outcomes=lines)

        def example(self, folder: Path):
            model = folder / "model.json"
            model.write_text(json.dumps({"hi": "greeting"}))
            return EvaluationRequest(model, [{"text": "hi", "label": "greeting"}], {})
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mlife_shared.errors import Unprocessable

MAX_SHOWN_JSON_BYTES = 64 * 1024  # BAM's bound on a badcase's prediction and ground truth
METRIC_NAME = re.compile(r"^[\w\-. :/]{1,250}$")  # what MLflow takes as a metric name


class EvaluationRefused(Unprocessable):
    """The model or the set does not fit this evaluator: the message says what to fix."""


class EvaluationCancelled(Exception):
    """Raised by `evaluate` when the request's cancel flag is set."""


@dataclass
class EvaluationRequest:
    """What an evaluator scores: `model_path` (the model file), `items` (manifest items with `local_path` /
    `local_files`), `params` (the task's params), `cancel` (set when the task is cancelled), `batch_size` (samples
    per model call, a hint)."""

    model_path: Path
    items: list[dict[str, Any]]
    params: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 1024

    def own_params(self, name: str) -> dict[str, Any]:
        """`params[name]`: the evaluator's own settings (an object), or {}."""
        value = self.params.get(name) or {}
        if not isinstance(value, dict):
            raise EvaluationRefused(f"params.{name} must be an object of the {name} evaluator's settings")
        return value


@dataclass
class EvaluationResult:
    """Metrics (name → number), one outcome per item in item order (`outcomes`, dicts of a TestingOutcomeLine; or,
    for large sets, `outcomes_jsonl`: the same as JSON lines), and a report (any JSON) shown with the task."""

    metrics: dict[str, float]
    outcomes: Sequence[Mapping[str, Any]] = ()
    report: dict[str, Any] = field(default_factory=dict)
    outcomes_jsonl: bytes | None = None

    def jsonl(self) -> bytes:
        if self.outcomes_jsonl is not None:
            return self.outcomes_jsonl
        return "".join(json.dumps(dict(o), ensure_ascii=False, default=str) + "\n" for o in self.outcomes).encode()


def sample_ref(item: Mapping[str, Any], index: int) -> tuple[str, str | None, str | None]:
    """(sample_id, data_ref, badcase_id) of a manifest item, as every built-in evaluator writes them."""
    extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
    badcase = item.get("badcase_id") or (extra or {}).get("badcase_id") or None
    return (str(item.get("md5") or item.get("id") or index), item.get("md5") or item.get("key"),
            str(badcase) if badcase else None)


def outcome(item: Mapping[str, Any], index: int, *, ground_truth: Any, prediction: Any, correct: bool,
            **more: Any) -> dict[str, Any]:
    """One outcome line of `item` (the `index`-th of the request)."""
    sample_id, data_ref, badcase_id = sample_ref(item, index)
    return {"sample_id": sample_id, "data_ref": data_ref, "ground_truth": ground_truth, "prediction": prediction,
            "correct": bool(correct), "badcase_id": badcase_id, **more}


@runtime_checkable
class Evaluator(Protocol):
    name: str
    api: str
    description: str
    model_formats: tuple[str, ...]  # the model formats it scores (MSM's `format`, e.g. "onnx")

    def files(self, item: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        """Extra files a sample needs besides its data file: role → object key (a DAM file is `dam/files/<md5>`).
        The runner downloads them and sets `item["local_files"][role]` to the local path."""
        ...

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        """Why the model cannot be scored on these items (nothing is run yet), or None."""
        ...

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        """Metrics, report and one outcome per item (called in a worker thread)."""
        ...

    def example(self, folder: Path) -> EvaluationRequest:
        """A tiny model and set written into `folder` that this evaluator scores (the conformance kit runs it)."""
        ...


PROTOCOL = Evaluator


def conformance(plugin: Any) -> None:
    """The plugin scores its own example: finite metrics, one valid, small outcome line per item, and it stops
    when cancelled."""
    from mlife_shared.events.contracts import TestingOutcomeLine

    formats = plugin.model_formats
    assert isinstance(formats, tuple) and formats and all(isinstance(f, str) for f in formats), \
        f"model_formats must be a non-empty tuple of format names, not {formats!r}"
    with tempfile.TemporaryDirectory(prefix="mlife-evaluator-") as tmp:
        request = plugin.example(Path(tmp))
        assert isinstance(request, EvaluationRequest), f"example() returned {type(request).__name__}, " \
                                                       "not an EvaluationRequest"
        assert request.items, "example() gives no items to score"
        for item in request.items:
            files = plugin.files(item, request.params)
            assert isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in files.items()), \
                f"files() must return role → object key (str → str), not {files!r}"
        reason = plugin.incompatibility(request)
        assert reason is None, f"incompatibility() refuses its own example: {reason}"
        result = plugin.evaluate(request)
        assert isinstance(result, EvaluationResult), f"evaluate() returned {type(result).__name__}, " \
                                                     "not an EvaluationResult"
        _check_metrics(result.metrics)
        json.dumps(result.report, allow_nan=False)
        lines = [ln for ln in result.jsonl().decode().splitlines() if ln.strip()]
        assert len(lines) == len(request.items), \
            f"evaluate() gave {len(lines)} outcomes for {len(request.items)} items (one per item, in order)"
        for n, raw in enumerate(lines):
            line = TestingOutcomeLine.model_validate(json.loads(raw))
            for what in ("prediction", "ground_truth"):
                size = len(json.dumps(getattr(line, what), allow_nan=False))
                assert size <= MAX_SHOWN_JSON_BYTES, f"outcome {n}: its {what} is {size} bytes of JSON; BAM takes " \
                                                     f"at most {MAX_SHOWN_JSON_BYTES}"
        request.cancel.set()
        try:
            plugin.evaluate(request)
        except EvaluationCancelled:
            pass
        else:
            raise AssertionError("evaluate() went on with request.cancel set: raise EvaluationCancelled")


def _check_metrics(metrics: Any) -> None:
    assert isinstance(metrics, dict) and metrics, "metrics must be a non-empty dict name → number"
    for k, v in metrics.items():
        assert isinstance(k, str) and METRIC_NAME.match(k), \
            f"metric name {k!r}: use letters, digits, '_', '-', '.', ' ', ':' or '/' (MLflow refuses others)"
        assert isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v), \
            f"metric {k!r} is {v!r}: metrics are finite numbers"
