from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from mlife_shared.repository import Repository
from msm.registry.models import AliasChange, Compression, ModelAlias, ModelVersion, RegisteredModel


class RegistryRepository(Repository):
    async def model_by_name(self, name: str, *, for_update: bool = False) -> RegisteredModel | None:
        statement = select(RegisteredModel).where(RegisteredModel.name == name)
        model: RegisteredModel | None = await self.session.scalar(self.lock(statement, for_update=for_update))
        return model

    async def model(self, model_id: uuid.UUID) -> RegisteredModel | None:
        return await self.get(RegisteredModel, model_id)

    async def version(self, version_id: uuid.UUID) -> ModelVersion | None:
        return await self.get(ModelVersion, version_id)

    async def version_by_name(self, name: str, version: str) -> ModelVersion | None:
        return await self.session.scalar(select(ModelVersion).where(ModelVersion.name == name,
                                                                    ModelVersion.version == version))

    async def version_by_task(self, task_id: uuid.UUID) -> ModelVersion | None:
        return await self.session.scalar(select(ModelVersion).where(ModelVersion.task_id == task_id))

    async def versions(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ModelVersion]:
        if not ids:
            return {}
        rows = await self.session.scalars(select(ModelVersion).where(ModelVersion.id.in_(ids)))
        return {r.id: r for r in rows}

    async def versions_of(self, model_id: uuid.UUID) -> Sequence[ModelVersion]:
        return (await self.session.scalars(select(ModelVersion).where(ModelVersion.model_id == model_id)
                                           .order_by(ModelVersion.created_at))).all()

    async def search_models(self, name: str | None, limit: int) -> Sequence[RegisteredModel]:
        statement = select(RegisteredModel).order_by(RegisteredModel.name).limit(limit)
        if name:
            statement = statement.where(RegisteredModel.name.ilike(f"%{_escape(name)}%", escape="\\"))
        return (await self.session.scalars(statement)).all()

    async def search_versions(self, name: str | None, limit: int) -> Sequence[ModelVersion]:
        statement = select(ModelVersion).order_by(ModelVersion.created_at.desc()).limit(limit)
        if name:
            statement = statement.where(ModelVersion.name.ilike(f"%{_escape(name)}%", escape="\\"))
        return (await self.session.scalars(statement)).all()

    async def aliases(self, model_id: uuid.UUID) -> Sequence[ModelAlias]:
        return (await self.session.scalars(select(ModelAlias).where(ModelAlias.model_id == model_id)
                                           .order_by(ModelAlias.alias))).all()

    async def alias(self, model_id: uuid.UUID, alias: str) -> ModelAlias | None:
        return await self.session.scalar(select(ModelAlias).where(ModelAlias.model_id == model_id,
                                                                  ModelAlias.alias == alias))

    async def production_of_function(self, function: str) -> ModelVersion | None:
        """The version in `production` for a function: the production alias of the model(s) declaring it
        (when several models share the function, the alias that moved last)."""
        return await self.session.scalar(
            select(ModelVersion).join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
            .join(RegisteredModel, RegisteredModel.id == ModelAlias.model_id)
            .where(RegisteredModel.function == function, ModelAlias.alias == "production")
            .order_by(ModelAlias.updated_at.desc(), ModelAlias.id).limit(1))

    async def alias_history(self, model_id: uuid.UUID, alias: str | None = None) -> Sequence[AliasChange]:
        statement = select(AliasChange).where(AliasChange.model_id == model_id)
        if alias:
            statement = statement.where(AliasChange.alias == alias)
        return (await self.session.scalars(statement.order_by(AliasChange.created_at.desc(),
                                                              AliasChange.id))).all()

    async def delete(self, row: object) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def compressions_on(self, dataset_id: uuid.UUID) -> Sequence[Compression]:
        return (await self.session.scalars(select(Compression).where(Compression.dataset_id == dataset_id))).all()

    async def compression_of(self, version_id: uuid.UUID) -> Compression | None:
        return await self.session.scalar(select(Compression).where(Compression.compressed_version_id == version_id))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
