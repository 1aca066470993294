"""A task's runs, as its runner sees them: claim the queued attempt, keep it alive (heartbeat, cancel flag),
link its MLflow run, hand it back when the runner stops, and write its end state and events. Never commits:
the runner's transaction does."""

from __future__ import annotations

import uuid
from datetime import timedelta

from mlife_shared.db import utcnow
from mlife_shared.events.contracts import TaskFailed, TaskFinished, TestingCompleted
from mlife_shared.messaging import outbox
from mtt.runner.result import RunResult
from mtt.task.models import RunRequest, Task
from mtt.task.service import TaskUseCase


class RunService(TaskUseCase):
    async def claim(self, task_id: uuid.UUID, attempt: int, runner_id: str) -> Task | None:
        """The attempt, now running on `runner_id`; None when it is not this attempt's turn (gone, superseded,
        ended, or running with a live heartbeat)."""
        task = await self.repo.task(task_id, for_update=True)
        if task is None or task.attempt != attempt:
            return None
        if task.status == "running":
            stale = task.heartbeat_at is None or (
                utcnow() - task.heartbeat_at > timedelta(seconds=self.settings.stale_after_seconds))
            if not stale:
                return None
        elif task.status != "queued":
            return None
        now = utcnow()
        task.status, task.runner_id, task.started_at, task.heartbeat_at, task.updated_at = (
            "running", runner_id, now, now, now)
        return task

    async def hand_back(self, task_id: uuid.UUID, attempt: int, runner_id: str) -> None:
        """A run its runner stopped: a new attempt (its own log and work dir) through a new run request."""
        row = await self.repo.task(task_id, for_update=True)
        if row is None or row.attempt != attempt or row.status != "running":
            return
        now = utcnow()
        row.attempt += 1
        row.status, row.runner_id, row.updated_at, row.queued_at = "queued", None, now, now
        row.error = f"attempt {attempt} stopped with runner {runner_id}"
        await self.repo.add(RunRequest(id=uuid.uuid4(), task_id=row.id, attempt=row.attempt, queue=row.queue,
                                       created_at=now))

    async def cancel_wanted(self, task_id: uuid.UUID) -> bool:
        """The task was cancelled (or is gone)."""
        flags = await self.repo.refresh_flags(task_id)
        return flags is None or flags[1]

    async def heartbeat(self, task_id: uuid.UUID, attempt: int) -> None:
        await self.repo.heartbeat(task_id, attempt)

    async def link_mlflow(self, task_id: uuid.UUID, experiment_id: str, run_id: str) -> None:
        row = await self.repo.task(task_id)
        if row is not None:
            row.mlflow_experiment_id, row.mlflow_run_id = experiment_id, run_id

    async def finish(self, task_id: uuid.UUID, attempt: int, result: RunResult) -> None:
        """The attempt's end state, and its events: task.finished (with model.uploaded and testing.completed) or
        task.failed (with testing.failed)."""
        row = await self.repo.task(task_id, for_update=True)
        if row is None or row.attempt != attempt:
            return
        now = utcnow()
        row.status, row.error, row.exit_code = result.status, result.error, result.exit_code
        row.metrics = result.metrics
        row.evaluation = result.evaluation
        row.outcomes_key = result.outcomes_key
        row.artifacts = result.artifacts
        row.finished_at, row.updated_at, row.heartbeat_at = now, now, now
        if result.status == "succeeded":
            await self._succeeded(row, result)
        else:
            reason = (result.error or result.status)[:2000]
            await outbox.add(self.session, TaskFailed(task_id=row.id, kind=row.kind, reason=reason))
            await self.tasks.announce_testing_failed(row, reason, incompatible=result.incompatible)

    async def _succeeded(self, row: Task, result: RunResult) -> None:
        if result.models:
            splits = await self.tasks.test_splits(row)
            for m in result.models:
                await outbox.add(self.session, m.model_copy(update={"function": row.function,
                                                                    "test_dataset_ids": splits}))
        if row.kind == "test" and result.outcomes_key and row.model:
            await outbox.add(self.session, TestingCompleted(
                task_id=row.id, model_name=row.model["name"], model_version=row.model["version"],
                dataset_id=result.dataset_id, function=row.function, metrics=result.metrics,
                outcomes_key=result.outcomes_key, model_version_id=row.model_version_id,
                set_kind=row.set_kind or "other"))
        await outbox.add(self.session, TaskFinished(task_id=row.id, kind=row.kind, metrics=result.metrics))
