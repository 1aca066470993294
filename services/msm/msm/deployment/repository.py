from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from mlife_shared.repository import Repository
from msm.deployment.models import Deployment, DeploymentBadcase, DeploymentChange, DeploymentMetric, FunctionThresholds

GATE_LOCK = 0x6D736D67617465  # "msmgate"


class DeploymentRepository(Repository):
    async def deployment(self, deployment_id: uuid.UUID, *, for_update: bool = False) -> Deployment | None:
        if for_update:
            return await self.get_for_update(Deployment, deployment_id)
        return await self.get(Deployment, deployment_id)

    async def lock_gate(self) -> None:
        """Serialise gate decisions until the transaction ends (PostgreSQL; SQLite has one writer anyway): a
        request deciding while a testing result is recorded must not miss it, nor the result the request."""
        if self.is_postgresql:
            await self.session.execute(select(func.pg_advisory_xact_lock(GATE_LOCK)))

    async def awaiting_tests(self, function: str | None = None) -> Sequence[Deployment]:
        statement = select(Deployment).where(Deployment.status == "awaiting_tests").order_by(Deployment.created_at)
        if function is not None:
            statement = statement.where(Deployment.function == function)
        return (await self.session.scalars(statement)).all()

    async def function_thresholds(self, function: str) -> FunctionThresholds | None:
        return await self.get(FunctionThresholds, function)

    async def live_by_name(self, name: str) -> Deployment | None:
        return await self.session.scalar(select(Deployment).where(Deployment.name == name, Deployment.status == "live")
                                         .order_by(Deployment.updated_at.desc()).limit(1))

    async def search(self, name: str | None, status: str | None, limit: int) -> Sequence[Deployment]:
        statement = select(Deployment).order_by(Deployment.created_at.desc()).limit(limit)
        if name:
            statement = statement.where(Deployment.name == name)
        if status:
            statement = statement.where(Deployment.status == status)
        return (await self.session.scalars(statement)).all()

    async def changes(self, deployment_id: uuid.UUID) -> Sequence[DeploymentChange]:
        return (await self.session.scalars(select(DeploymentChange).where(DeploymentChange.deployment_id ==
                                                                          deployment_id)
                                           .order_by(DeploymentChange.created_at))).all()

    async def badcases(self, deployment_id: uuid.UUID) -> Sequence[DeploymentBadcase]:
        return (await self.session.scalars(select(DeploymentBadcase).where(DeploymentBadcase.deployment_id ==
                                                                           deployment_id)
                                           .order_by(DeploymentBadcase.created_at))).all()

    async def badcase_ids(self, deployment_id: uuid.UUID) -> set[uuid.UUID]:
        rows = await self.session.scalars(select(DeploymentBadcase.badcase_id).where(
            DeploymentBadcase.deployment_id == deployment_id))
        return set(rows)

    async def metrics(self, deployment_id: uuid.UUID, limit: int) -> Sequence[DeploymentMetric]:
        return (await self.session.scalars(select(DeploymentMetric).where(DeploymentMetric.deployment_id ==
                                                                          deployment_id)
                                           .order_by(DeploymentMetric.created_at.desc()).limit(limit))).all()
