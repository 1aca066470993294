"""The loop of `mlife demo` for the digits, as an Airflow DAG against a running MLife (connection `mlife_default`):

 data in (a folder written by examples/digits/make_dataset.py) → group items → train v1 (weak) → registered and
 tested → deployed (the gate passes), `production` → served; its wrong answers reported as feedback → badcases
 (and v1's testing mispredictions) added to the badcase test set → train v2 (good) → tested on its split and the
 badcase test set (and once more by a testing task) → deployed, `production` → v1 requested again: the gate
 BLOCKS it and `deploy_v1_again` FAILS naming the regressed badcases → train v3 (the good parameters again) →
 deployed, `production`.

Run it with `airflow dags test mlife_digits_loop -c '{"run": "1", "data_dir": "/data/digits"}'` (see
docs/pipelines.md). The run itself succeeds: the failed task is not a leaf; `train_v3` runs when it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from mlife import steps
from mlife_airflow.hooks.mlife import MLifeHook
from mlife_airflow.operators.mlife import (
    MLifeDeploymentOperator,
    MLifeGroupItemsOperator,
    MLifeModelVersionOperator,
    MLifeTestingOperator,
    MLifeTrainingOperator,
)

EXAMPLE_CODE = Path(__file__).resolve().parents[4] / "examples" / "digits"  # in a checkout of MLife
# the weak, good parameters of examples/digits/train.py, as `mlife demo` uses them
WEAK, GOOD = {"C": 0.01, "max_iter": 2000}, {"C": 1.0, "max_iter": 2000}
NAME = "digits-{{ params.run }}"  # the function, the model and the deployment share it, as in `mlife demo`
TIMEOUT = 900.0


def _name() -> str:
    return f"digits-{get_current_context()['params']['run']}"


@task
def import_data() -> dict[str, Any]:
    """The folder's images uploaded to DAM (known MD5s skipped) and one document of them."""
    params = get_current_context()["params"]
    with MLifeHook().get_conn() as client:
        return steps.import_images(client, params["data_dir"], name=_name(),
                                   description="digits, imported by the Airflow DAG mlife_digits_loop")


@task
def serve_and_feedback(v1: dict[str, Any], grouped: dict[str, Any]) -> dict[str, Any]:
    """Traffic (train split images) on the live v1; its wrong answers reported as feedback; waits until BAM filed
    them and v1's testing mispredictions as badcases."""
    params, name = get_current_context()["params"], _name()
    with MLifeHook().get_conn() as client:
        served = steps.serve_and_feedback(client, name, params["data_dir"], input_name=steps.input_name(v1),
                                          from_dataset=grouped["train_dataset_id"])
        testing = steps.wait_badcases(client, name, steps.testing_failures(v1, grouped["test_dataset_id"]),
                                      source="testing", model_version=str(v1["version"]), timeout=TIMEOUT)
        serving = steps.wait_badcases(client, name, served["reported"], source="serving", timeout=TIMEOUT)
    return {**served, "testing_badcases": testing, "serving_badcases": serving}


@task
def add_to_test_data(badcases: dict[str, Any]) -> dict[str, Any]:
    """The badcases appended to the function's badcase test set; waits for DAM to freeze it."""
    ids = sorted(set(badcases["testing_badcases"]) | set(badcases["serving_badcases"]))
    with MLifeHook().get_conn() as client:
        steps.add_to_test_data(client, ids)
        return steps.wait_badcase_test_set(client, _name(), len(ids), timeout=TIMEOUT)


def train_and_register(label: str, params: dict[str, Any], grouped: Any, tested_on: list[Any],
                       **kwargs: Any) -> tuple[MLifeTrainingOperator, MLifeModelVersionOperator]:
    train = MLifeTrainingOperator(task_id=f"train_{label}", function=NAME, model=NAME, training_params=params,
                                  train_dataset_id=grouped["train_dataset_id"],
                                  test_dataset_id=grouped["test_dataset_id"],
                                  code_dir="{{ params.code_dir }}", wait_timeout=TIMEOUT, **kwargs)
    version = MLifeModelVersionOperator(task_id=f"{label}_registered", model=NAME, training_task_id=train.output["task_id"],
                                        tested_on=tested_on, wait_timeout=TIMEOUT)
    train >> version
    return train, version


with DAG(
    dag_id="mlife_digits_loop",
    schedule=None,
    catchup=False,
    tags=["mlife", "example"],
    params={"run": Param("1", type="string", description="suffix of the function, model and deployment names"),
            "data_dir": Param("", type="string", description="folder written by examples/digits/make_dataset.py"),
            "code_dir": Param(str(EXAMPLE_CODE), type="string", description="the training code (examples/digits)")},
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    document = import_data()
    grouped = MLifeGroupItemsOperator(task_id="group_items", function=NAME, dataset_name=NAME,
                                      document_ids=[document["document_id"]])
    _, v1 = train_and_register("v1", WEAK, grouped.output, [grouped.output["test_dataset_id"]])
    deploy_v1 = MLifeDeploymentOperator(task_id="deploy_v1", deployment_name=NAME, version_ids=[v1.output["id"]],
                                        promote_to="production", wait_timeout=TIMEOUT)
    v1 >> deploy_v1
    feedback = serve_and_feedback(v1.output, grouped.output)
    deploy_v1 >> feedback
    test_set = add_to_test_data(feedback)

    train_v2, v2 = train_and_register("v2", GOOD, grouped.output,
                                      [grouped.output["test_dataset_id"], test_set["dataset_id"]])
    test_set >> train_v2
    # one more test of v2 on its split, waited for in the worker (deferrable=False: no triggerer needed)
    test_v2 = MLifeTestingOperator(task_id="test_v2", model=NAME, function=NAME, deferrable=False,
                                   dataset_ids=[grouped.output["test_dataset_id"]], wait_timeout=TIMEOUT)
    deploy_v2 = MLifeDeploymentOperator(task_id="deploy_v2", deployment_name=NAME, version_ids=[v2.output["id"]],
                                        promote_to="production", wait_timeout=TIMEOUT)
    v2 >> test_v2 >> deploy_v2

    # v1 again, now that v2 (which fixed v1's badcases) is production: the gate blocks it and this task fails
    deploy_v1_again = MLifeDeploymentOperator(task_id="deploy_v1_again", deployment_name=NAME,
                                              version_ids=[v1.output["id"]], wait_timeout=TIMEOUT)
    deploy_v2 >> deploy_v1_again

    # then a better version passes: the good parameters again, trained once the blocked request is done
    train_v3, v3 = train_and_register("v3", GOOD, grouped.output,
                                      [grouped.output["test_dataset_id"], test_set["dataset_id"]],
                                      trigger_rule=TriggerRule.ALL_DONE)
    deploy_v1_again >> train_v3
    deploy_v3 = MLifeDeploymentOperator(task_id="deploy_v3", deployment_name=NAME, version_ids=[v3.output["id"]],
                                        promote_to="production", wait_timeout=TIMEOUT)
    v3 >> deploy_v3
