"""Operators for MLife's loop, each a thin shell over one of `mlife.steps`' functions (the Kubeflow components
call the same ones). The operators that wait (training, testing, the model registration, the deployment) are
deferrable by default: they start their step, look once, and hand the waiting to `MLifePollTrigger` in the
triggerer; with `deferrable=False` they poll in the worker. Every return value is JSON (XCom).

A deployment the gate blocks fails its task (no retry: waiting will not change the verdict) with the gate's
reasons and the regressed badcases named (`mlife.steps.blocked_message`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlife import steps
from mlife.client import Client
from mlife_airflow.hooks.mlife import MLifeHook
from mlife_airflow.triggers.mlife import MLifePollTrigger


class MLifeBaseOperator(BaseOperator):
    """What every MLife operator shares: the connection, and waiting by deferral or by polling."""

    def __init__(self, *, mlife_conn_id: str = MLifeHook.default_conn_name, deferrable: bool = True,
                 poll_interval: float = 2.0, wait_timeout: float = 3600.0, **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)  # each key of the answer its own XCom: `op.output["id"]`
        super().__init__(**kwargs)
        self.mlife_conn_id, self.deferrable = mlife_conn_id, deferrable
        self.poll_interval, self.wait_timeout = poll_interval, wait_timeout

    def client(self) -> Client:
        return MLifeHook(self.mlife_conn_id).get_conn()

    def wait_for(self, check: str, arguments: dict[str, Any]) -> Any:
        """The answer of `mlife.steps.<check>(client, **arguments)`: at once if it is there, else after deferring
        to the triggerer (or polling here when not deferrable)."""
        try:
            with self.client() as client:
                answer = getattr(steps, check)(client, **arguments)
                if answer is None and not self.deferrable:
                    answer = steps.poll(f"{self.task_id}: {check}", lambda: getattr(steps, check)(client, **arguments),
                                        timeout=self.wait_timeout, interval=self.poll_interval)
        except steps.DeploymentBlocked as exc:
            raise AirflowFailException(str(exc)) from exc
        except steps.StepFailed as exc:
            raise AirflowException(str(exc)) from exc
        if answer is None:
            self.defer(trigger=MLifePollTrigger(check, arguments, self.mlife_conn_id, self.poll_interval),
                       method_name="execute_complete", timeout=timedelta(seconds=self.wait_timeout))
        return self.finish(answer)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if event["status"] == "done":
            return self.finish(event["result"])
        if event["status"] == "blocked":
            raise AirflowFailException(event["message"])
        raise AirflowException(event["message"])

    def finish(self, answer: Any) -> Any:
        """What the task returns once its wait is over (subclasses add a last step)."""
        return answer


class MLifeGroupItemsOperator(MLifeBaseOperator):
    """Group documents into a train and a test dataset for a function (→ dataset.grouped). Returns
    train_dataset_id, test_dataset_id and the datasets."""

    template_fields: Sequence[str] = ("function", "document_ids", "dataset_name", "test_fraction", "seed")

    def __init__(self, *, function: str, document_ids: list[str] | str, dataset_name: str,
                 test_fraction: float = 0.2, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.function, self.document_ids, self.dataset_name = function, document_ids, dataset_name
        self.test_fraction, self.seed = test_fraction, seed

    def execute(self, context: Context) -> Any:
        ids = [self.document_ids] if isinstance(self.document_ids, str) else list(self.document_ids)
        with self.client() as client:
            return steps.group_items(client, self.function, ids, name=self.dataset_name,
                                     test_fraction=float(self.test_fraction), seed=int(self.seed))


class MLifeTrainingOperator(MLifeBaseOperator):
    """A training task with its code (a local folder, zipped and uploaded), run on MTT's runners; waits for it to
    succeed (deferrable) unless `wait=False`. The model it uploads is registered under `model`. Returns the task
    (task_id, status, metrics)."""

    template_fields: Sequence[str] = ("function", "model", "train_dataset_id", "test_dataset_id", "code_dir",
                                      "training_params", "command")

    def __init__(self, *, function: str, model: str, train_dataset_id: str, test_dataset_id: str, code_dir: str,
                 training_params: dict[str, Any] | None = None, command: str = "python train.py", wait: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.function, self.model, self.code_dir, self.command = function, model, code_dir, command
        self.train_dataset_id, self.test_dataset_id = train_dataset_id, test_dataset_id
        self.training_params, self.wait = training_params or {}, wait

    def execute(self, context: Context) -> Any:
        with self.client() as client:
            task = steps.start_training(client, function=self.function, model=self.model,
                                        train_dataset_id=self.train_dataset_id, test_dataset_id=self.test_dataset_id,
                                        code_dir=self.code_dir, params=dict(self.training_params),
                                        command=self.command, name=f"{self.model} ({self.dag_id}.{self.task_id})")
        self.log.info("MLife training task %s queued", task["task_id"])
        return self.wait_for("check_task", {"task_id": task["task_id"]}) if self.wait else task


class MLifeTestingOperator(MLifeBaseOperator):
    """A testing task of the latest registered version of `model` on datasets (MTT's built-in evaluator); waits
    for it (deferrable) unless `wait=False`. Returns the task with its metrics."""

    template_fields: Sequence[str] = ("model", "dataset_ids", "function")

    def __init__(self, *, model: str, dataset_ids: list[str], function: str | None = None, wait: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.dataset_ids, self.function, self.wait = model, dataset_ids, function, wait

    def execute(self, context: Context) -> Any:
        with self.client() as client:
            task = steps.start_testing(client, model=self.model, dataset_ids=list(self.dataset_ids),
                                       function=self.function, name=f"{self.model} ({self.dag_id}.{self.task_id})")
        self.log.info("MLife testing task %s queued", task["task_id"])
        return self.wait_for("check_task", {"task_id": task["task_id"]}) if self.wait else task


class MLifeModelVersionOperator(MLifeBaseOperator):
    """Wait (deferrable) until MSM registered the model a training task uploaded and MTT tested it on every
    dataset of `tested_on` (its test split, the function's badcase test set). Returns the version: id, version,
    testing results, badcase outcomes."""

    template_fields: Sequence[str] = ("model", "training_task_id", "tested_on")

    def __init__(self, *, model: str, training_task_id: str, tested_on: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.training_task_id, self.tested_on = model, training_task_id, tested_on or []

    def execute(self, context: Context) -> Any:
        return self.wait_for("check_model_version", {"model": self.model, "task_id": str(self.training_task_id),
                                                     "tested_on": [str(d) for d in self.tested_on if d]})


class MLifeDeploymentOperator(MLifeBaseOperator):
    """Request a deployment of model versions; waits (deferrable) for the gate — which may first wait for their
    tests — and, with `wait_until="live"`, for the deployment to serve. A blocked request FAILS the task with the
    gate's reasons and the regressed badcases named. `promote_to` (e.g. "production") then moves that alias to
    the deployed version. Returns the deployment."""

    template_fields: Sequence[str] = ("deployment_name", "version_ids", "thresholds", "promote_to")

    def __init__(self, *, deployment_name: str, version_ids: list[str] | str,
                 thresholds: dict[str, dict[str, float]] | None = None, wait_until: str = "live",
                 promote_to: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if wait_until not in ("live", "decided"):
            raise ValueError("wait_until: 'live' (serving) or 'decided' (the gate passed it)")
        self.deployment_name, self.version_ids, self.thresholds = deployment_name, version_ids, thresholds
        self.wait_until, self.promote_to = wait_until, promote_to

    def execute(self, context: Context) -> Any:
        ids = [self.version_ids] if isinstance(self.version_ids, str) else [str(v) for v in self.version_ids]
        with self.client() as client:
            d = steps.request_deployment(client, self.deployment_name, ids, thresholds=self.thresholds or None)
        self.log.info("MLife deployment %s requested: %s", d["id"], d["status"])
        return self.wait_for("check_deployment", {"deployment_id": str(d["id"]), "until": self.wait_until})

    def finish(self, answer: Any) -> Any:
        if self.promote_to and answer.get("status") == "live":
            primary = next(v for v in answer["versions"] if v.get("role", "primary") == "primary")
            with self.client() as client:
                steps.promote(client, primary["name"], primary["version"], alias=self.promote_to,
                              reason=f"Airflow {self.dag_id}.{self.task_id}: deployment {answer['id']} is live")
            self.log.info("%s v%s is now %s", primary["name"], primary["version"], self.promote_to)
        return {k: answer.get(k) for k in ("id", "name", "function", "status", "versions", "gate")}
