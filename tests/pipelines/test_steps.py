"""mlife.steps against the running platform, where the pipelines' example loop does not already prove it:
the import is idempotent by MD5, grouping answers both splits, and a wait ends at once on a refused request
(a bad token, an unknown task) instead of polling to its timeout. The loop itself (training, registration, the
gate blocking a regression and naming its badcases) runs in test_airflow.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlife import steps
from mlife.client import Client, MLifeAPIError
from tests.support.stack import Stack


def small_folder(digits: Path, into: Path, n: int) -> Path:
    """The first n rows of the digits folder (files and manifest) in a folder of their own."""
    into.mkdir()
    rows = steps.read_manifest(digits)[:n]
    for row in rows:
        (into / row["key"]).write_bytes((digits / row["key"]).read_bytes())
    (into / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return into


def test_import_is_deduplicated_and_grouping_answers_both_splits(stack: Stack, digits_data: Path,
                                                                 tmp_path: Path) -> None:
    folder = small_folder(digits_data, tmp_path / "digits", 40)
    name = f"steps-{uuid.uuid4().hex[:8]}"
    with Client(stack.url, token=stack.tokens["engineer"]) as c:
        first = steps.import_images(c, folder, name=name)
        again = steps.import_images(c, folder, name=f"{name}-again")
        assert first["items"] == again["items"] == 40
        assert again == {**again, "uploaded": 0, "skipped": 40}  # every MD5 known: nothing sent twice
        assert first["document_id"] != again["document_id"]
        grouped = steps.group_items(c, name, [first["document_id"]], name=name, test_fraction=0.25)
        datasets = {d["purpose"]: d for d in grouped["datasets"]}
        assert {grouped["train_dataset_id"], grouped["test_dataset_id"]} == {str(d["id"]) for d in datasets.values()}
        assert datasets["train"]["item_count"] + datasets["test"]["item_count"] == 40
        assert 0 < datasets["test"]["item_count"] < datasets["train"]["item_count"]


def test_a_wait_ends_at_once_on_a_refused_request(stack: Stack) -> None:
    with Client(stack.url, token="mlf_not_a_token") as c, pytest.raises(MLifeAPIError) as refused:
        steps.wait_task(c, str(uuid.uuid4()), timeout=600)
    assert refused.value.status == 401
    with Client(stack.url, token=stack.tokens["viewer"]) as c:
        # an unknown task is "not yet" to a wait (a task id may be read before it is visible), until the timeout
        with pytest.raises(steps.StepFailed, match="did not happen within 1s"):
            steps.wait_task(c, str(uuid.uuid4()), timeout=1, interval=0.2)
        with pytest.raises(MLifeAPIError) as forbidden:  # a viewer may not deploy: refused, not awaited
            steps.request_deployment(c, "steps-nothing", [str(uuid.uuid4())])
        assert forbidden.value.status == 403
