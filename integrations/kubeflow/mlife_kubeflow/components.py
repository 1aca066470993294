# mypy: disable-error-code="valid-type,type-arg"
# (kfp reads the annotations at compile and run time: `NamedTuple("Name", [...])` and a bare `dict` are its DSL)
"""The Kubeflow Pipelines components of MLife's loop (kfp v2 lightweight Python components). Each body imports
`mlife_kubeflow.tasks` and calls one function of it (which calls `mlife.steps`), so the image a component runs in
needs the MLife SDK and this package (see docs/pipelines.md); kfp itself is not pip-installed at run time.

Components read MLIFE_URL and MLIFE_TOKEN from their environment. Their annotations are written out in full
(no `from __future__ import annotations`, no aliases): kfp reads them, and copies each function's source alone
into the component."""

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

# The image every component runs in: one with Python 3.11, kfp, the MLife SDK and mlife-kubeflow (docs/pipelines.md).
IMAGE = os.environ.get("MLIFE_KFP_IMAGE", "python:3.11-slim")


def component(func: Callable[..., Any]) -> Any:
    return dsl.component(func, base_image=IMAGE, install_kfp_package=False)


@component
def make_digits(data: Output[Dataset], limit: int = 0, code_dir: str = "") -> int:
    """Data in: scikit-learn's digits as PNG files and a manifest.jsonl (md5, key, label) in the `data` folder, by
    make_dataset.py of the digits example (`code_dir`, default examples/digits)."""
    from mlife_kubeflow import tasks

    return tasks.make_digits(data.path, limit, code_dir)


@component
def import_images(data: Input[Dataset], name: str) -> str:
    """The folder's files uploaded to DAM (MD5 precheck: known ones skipped) and one document of them; its id."""
    from mlife_kubeflow import tasks

    return tasks.import_images(data.path, name)


@component
def group_items(function: str, document_id: str, name: str, test_fraction: float = 0.2
                ) -> NamedTuple("Grouped", [("train_dataset_id", str), ("test_dataset_id", str)]):
    """Group items: the document split into a train and a test dataset for the function (→ dataset.grouped)."""
    from mlife_kubeflow import tasks

    return tasks.group_items(function, document_id, name, test_fraction)


@component
def train_model(function: str, model: str, params: dict, label: str, train_dataset_id: str = "",
                test_dataset_id: str = "", code_dir: str = "", timeout: float = 600.0) -> str:
    """Training: an MTT task with the training code, run to its end (its model is registered as `model`); the
    task id. The dataset ids default to "" so the task can follow a failed one (ignore_upstream_failure)."""
    from mlife_kubeflow import tasks

    return tasks.train(function, model, train_dataset_id, test_dataset_id, params, label, code_dir, timeout)


@component
def test_model(function: str, model: str, dataset_id: str, timeout: float = 600.0
               ) -> NamedTuple("Tested", [("task_id", str), ("accuracy", float)]):
    """Testing: an MTT testing task of the model's latest version on a dataset (the built-in ONNX evaluator), run
    to its end; its task id and accuracy."""
    from mlife_kubeflow import tasks

    return tasks.test(function, model, dataset_id, timeout)


@component
def registered_version(model: str, task_id: str, test_dataset_id: str, badcase_dataset_id: str = "",
                       timeout: float = 600.0) -> NamedTuple("Version", [("version_id", str), ("version", str)]):
    """Model registration wait: the version the training task registered, once MTT tested it on its test split
    (and on the function's badcase test set when given)."""
    from mlife_kubeflow import tasks

    return tasks.registered_version(model, task_id, [test_dataset_id, badcase_dataset_id], timeout)


@component
def deploy(deployment: str, model: str, version_id: str, promote: bool = True, timeout: float = 600.0) -> str:
    """Deployment request: the version deployed as `deployment` once the gate passes it (waiting for its tests),
    live, then `production` (promote). A request the gate BLOCKS fails this component, naming the regressed
    badcases."""
    from mlife_kubeflow import tasks

    return tasks.deploy(deployment, model, version_id, promote, timeout)


@component
def serve_and_feedback(function: str, deployment: str, version_id: str, data: Input[Dataset], dataset_id: str,
                       traffic: int = 100, max_feedback: int = 6, timeout: float = 600.0
                       ) -> NamedTuple("Served", [("predictions", int), ("wrong", int), ("model_version", str)]):
    """Predictions on the dataset's images through the deployment once it answers with `version_id`; the wrong
    ones reported as feedback (serving.feedback → BAM badcases, waited for). max_feedback=0 only checks it serves."""
    from mlife_kubeflow import tasks

    return tasks.serve_and_feedback(function, deployment, version_id, data.path, dataset_id, traffic, max_feedback,
                                    timeout)


@component
def add_to_test_data(function: str, version_id: str, test_dataset_id: str, timeout: float = 600.0) -> str:
    """The function's badcases (the version's mispredictions on its test split, and the serving ones) added to its
    badcase test set; the set's dataset id once DAM froze it."""
    from mlife_kubeflow import tasks

    return tasks.add_to_test_data(function, version_id, test_dataset_id, timeout)


@component
def fixed_by_production(function: str, version_id: str, timeout: float = 600.0) -> int:
    """Waits for BAM to mark fixed the badcases the new `production` version passes; how many."""
    from mlife_kubeflow import tasks

    return tasks.fixed_by_production(function, version_id, timeout)
