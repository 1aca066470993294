"""The task's MLflow run: opened with its params and inputs before the command, closed with what the command
logged (it has no network), its log, models and evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from mtt.runner.context import RunnerContext
from mtt.runner.mlflow_rest import MlflowError, MlflowRest
from mtt.runner.output import metric_history, param_records, regular_files
from mtt.runner.result import RunResult
from mtt.task.models import Task

log = structlog.get_logger(__name__)
END_STATUS = {"succeeded": "FINISHED", "cancelled": "KILLED"}


async def open_run(ctx: RunnerContext, mlflow: MlflowRest, task: Task, manifests: list[dict[str, Any]]) -> str:
    """A new MLflow run of this attempt, linked to the task; → its artifact URI."""
    exp = await mlflow.experiment_id(f"{ctx.settings.mlflow_experiment}-{task.kind}")
    info = await mlflow.create_run(exp, f"{task.name} #{task.attempt}"[:250], {
        "mlife.task_id": str(task.id), "mlife.kind": task.kind, "mlife.attempt": str(task.attempt),
        "mlflow.user": task.owner or "mlife"})
    run_id = info["run_id"]
    params = {f"param.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in task.params.items()}
    params.update({"mlife.command": task.command or "(built-in evaluator)", "mlife.code_location":
                   task.code_location or "", "mlife.runner": ctx.id})
    if task.model:
        params.update({"mlife.model": f"{task.model['name']}:{task.model['version']}"})
    await mlflow.log_batch(run_id, params=params)
    await mlflow.log_inputs(run_id, [{"name": f"dataset-{m['dataset_id']}", "digest": m["digest"],
                                      "source": m["manifest_key"],
                                      "context": "training" if m.get("purpose") == "train" else "testing"}
                                     for m in manifests])
    task.mlflow_experiment_id, task.mlflow_run_id = exp, run_id
    async with ctx.db.transaction() as session:
        await ctx.runs(session).link_mlflow(task.id, exp, run_id)
    return str(info.get("artifact_uri", ""))


async def _log_metrics_and_params(mlflow: MlflowRest, run_id: str, task: Task, result: RunResult, out: Path) -> None:
    history = metric_history(out)
    await mlflow.log_records(run_id, metrics=history)
    logged = {r["key"] for r in history}
    rest = {k: v for k, v in result.metrics.items() if k not in logged}
    if rest:
        await mlflow.log_batch(run_id, metrics=rest)
    params = param_records(out)
    for i in range(0, len(params), 100):
        try:
            await mlflow.log_records(run_id, params=params[i:i + 100])
        except MlflowError as exc:  # e.g. a param logged twice with two values: the run stands
            log.warning("mlflow_params_refused", task_id=str(task.id), error=str(exc))


async def _upload_artifacts(mlflow: MlflowRest, artifact_uri: str, result: RunResult, work: Path) -> None:
    await mlflow.upload_artifact(artifact_uri, work / "run.log", "logs/run.log")
    for m in regular_files(work / "out", "models/*/*"):
        await mlflow.upload_artifact(artifact_uri, m, f"models/{m.parent.name}/{m.name}")
    if result.evaluation is not None:
        ev = work / "evaluation.json"
        ev.write_text(json.dumps(result.evaluation))
        await mlflow.upload_artifact(artifact_uri, ev, "evaluation.json")


async def close_run(mlflow: MlflowRest, task: Task, result: RunResult, work: Path, artifact_uri: str | None) -> None:
    """What the command logged, then the run's end status; an MLflow failure fails a run that succeeded."""
    assert task.mlflow_run_id
    try:
        # the command has no network: the metrics it logged (each step) and its params reach the run from here
        await _log_metrics_and_params(mlflow, task.mlflow_run_id, task, result, work / "out")
        if artifact_uri:
            await _upload_artifacts(mlflow, artifact_uri, result, work)
        await mlflow.finish(task.mlflow_run_id, END_STATUS.get(result.status, "FAILED"))
    except Exception as exc:  # noqa: BLE001 - the run's result stands; say so
        log.warning("mlflow_close_failed", task_id=str(task.id), error=str(exc))
        if result.status == "succeeded":
            result.status, result.error = "failed", f"MLflow: {exc}"
