"""What one run uses of the runner that took it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import Database
from mlife_shared.objectstore import ObjectStore, ScopedStore
from mtt.config import Settings
from mtt.runner.backends import Backend
from mtt.task.runs import RunService


@dataclass(frozen=True)
class RunnerContext:
    id: str
    settings: Settings
    db: Database
    raw_store: ObjectStore  # the whole store: manifests, models and code archives other services name
    store: ScopedStore  # MTT's own prefix: logs, outcomes, uploaded models
    backend: Backend

    def runs(self, session: AsyncSession) -> RunService:
        return RunService(session, self.settings, self.raw_store)
