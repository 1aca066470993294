"""Aliases: a name (`production`, `staging`, …) pointing at one version of a model, moved and reverted with
who, when and why recorded. Moving `production` changes what the function's badcase statuses follow: BAM is
told (`model.promoted`), production is tested on the function's badcase test set when it lacks a result, and
deployments waiting for tests are decided again."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import utcnow
from mlife_shared.errors import Unprocessable
from mlife_shared.events.contracts import ModelAliasMoved, ModelPromoted
from mlife_shared.messaging import outbox
from msm.deployment.service import DeploymentService
from msm.registry.exceptions import AliasConflict, ModelNotFound
from msm.registry.models import AliasChange, ModelAlias, ModelVersion, RegisteredModel
from msm.registry.repository import RegistryRepository
from msm.testing.service import TestingService

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")


class AliasService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = RegistryRepository(session)

    async def _model(self, name: str) -> RegisteredModel:
        model = await self.repo.model_by_name(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r}")
        return model

    async def resolve(self, name: str, ref: str) -> ModelVersion:
        """A version of `name` by its number, its id, or an alias."""
        model = await self._model(name)
        version = await self.repo.version_by_name(name, ref)
        if version is None:
            alias = await self.repo.alias(model.id, ref)
            if alias is not None:
                version = await self.repo.version(alias.version_id)
        if version is None:
            try:
                version = await self.repo.version(uuid.UUID(ref))
            except ValueError:
                version = None
        if version is None or version.model_id != model.id:
            raise ModelNotFound(f"model {name!r} has no version or alias {ref!r}")
        return version

    async def move(self, name: str, alias: str, ref: str, *, actor: str, reason: str) -> AliasChange:
        if not ALIAS.match(alias):
            raise Unprocessable("an alias is lowercase letters, digits, '_' or '-', starting with a letter")
        version = await self.resolve(name, ref)
        await self.repo.model_by_name(name, for_update=True)  # one alias move per model at a time
        return await self._move(version.model_id, alias, version.id, actor=actor, reason=reason)

    async def _move(self, model_id: uuid.UUID, alias: str, version_id: uuid.UUID | None, *, actor: str,
                    reason: str) -> AliasChange:
        row = await self.repo.alias(model_id, alias)
        previous = row.version_id if row else None
        if previous == version_id:
            raise AliasConflict(f"alias {alias!r} already points at that version")
        if version_id is None:
            assert row is not None
            await self.repo.delete(row)
        elif row is None:
            await self.repo.add(ModelAlias(model_id=model_id, alias=alias, version_id=version_id))
        else:
            row.version_id, row.updated_at = version_id, utcnow()
        change = AliasChange(model_id=model_id, alias=alias, from_version_id=previous, to_version_id=version_id,
                             actor=actor, reason=reason, created_at=utcnow())
        await self.repo.add(change)
        await self._notify_alias(change)
        if alias == "production":
            await self._promoted(change)
        return change

    async def _promoted(self, change: AliasChange) -> None:
        """model.promoted (BAM moves its function's badcase statuses to follow production); and, when the new
        production has no result on its function's current badcase test set, a request for one. When the alias
        was removed (revert of its first move), the function's production is another model's that shares the
        function, if any: BAM is told so, as the gate now compares with it."""
        model = await self.repo.model(change.model_id)
        assert model is not None
        if change.to_version_id is not None:
            versions = await self.repo.versions([v for v in (change.from_version_id, change.to_version_id) if v])
            version = versions[change.to_version_id]
            previous = versions.get(change.from_version_id) if change.from_version_id else None
            await outbox.add(self.session, ModelPromoted(
                model_version_id=version.id, model_name=model.name, model_version=version.version,
                function=model.function, previous_version=previous.version if previous else None))
        elif model.function and (production := await self.repo.production_of_function(model.function)) is not None:
            await outbox.add(self.session, ModelPromoted(model_version_id=production.id, model_name=production.name,
                                                   model_version=production.version, function=model.function))
        if model.function:
            await TestingService(self.session).test_production_on(
                model.function, reason=f"the production of {model.function!r} changed ({model.name} moved it)")
            # Requests waiting for tests compare with production: the new one's result may be needed now, or
            # the old one's no longer.
            await DeploymentService(self.session).reevaluate(function=model.function)

    async def _notify_alias(self, change: AliasChange) -> None:
        """An alias moved, who moved it and why (the gateway's webhooks follow it)."""
        model = await self.repo.model(change.model_id)
        assert model is not None
        versions = await self.repo.versions([v for v in (change.from_version_id, change.to_version_id) if v])
        number: dict[uuid.UUID | None, str] = {k: v.version for k, v in versions.items()}
        await outbox.add(self.session, ModelAliasMoved(
            model_name=model.name, alias=change.alias, function=model.function,
            from_version=number.get(change.from_version_id), to_version=number.get(change.to_version_id),
            from_version_id=change.from_version_id, to_version_id=change.to_version_id, actor=change.actor,
            reason=change.reason))

    async def revert(self, name: str, alias: str, *, actor: str, reason: str) -> AliasChange:
        model = await self._model(name)
        await self.repo.model_by_name(name, for_update=True)
        history = await self.repo.alias_history(model.id, alias)
        if not history:
            raise AliasConflict(f"alias {alias!r} has never moved; nothing to revert")
        last = history[0]
        return await self._move(model.id, alias, last.from_version_id, actor=actor,
                                reason=reason or f"revert of the move at {last.created_at.isoformat()}")
