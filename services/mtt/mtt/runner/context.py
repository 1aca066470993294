"""What one run uses of the runner that took it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import Database
from mlife_shared.objectstore import ObjectStore, ScopedStore
from mtt.config import Settings
from mtt.runner.backends import Backend
from mtt.runner.plugins import backend_name, make_backend, requested_backend
from mtt.task.models import Task
from mtt.task.runs import RunService


@dataclass(frozen=True)
class RunnerContext:
    id: str
    settings: Settings
    db: Database
    raw_store: ObjectStore  # the whole store: manifests, models and code archives other services name
    store: ScopedStore  # MTT's own prefix: logs, outcomes, uploaded models
    backend: Backend  # the runner's own backend (MLIFE_MTT_RUNNER_BACKEND)
    backend_name: str = ""
    others: dict[str, Backend] = field(default_factory=dict)  # backends tasks named (params.runner), prepared once

    def runs(self, session: AsyncSession) -> RunService:
        return RunService(session, self.settings, self.raw_store)

    def backend_name_for(self, task: Task) -> str:
        requested = requested_backend(task.params)
        return self.backend_name if requested is None else backend_name(self.settings, requested)

    def backend_for(self, task: Task) -> Backend:
        """The backend the task's command runs in: its `params.runner`, else this runner's own."""
        name = self.backend_name_for(task)
        if name == self.backend_name:
            return self.backend
        if name not in self.others:
            self.others[name] = make_backend(self.settings, name)
        return self.others[name]
