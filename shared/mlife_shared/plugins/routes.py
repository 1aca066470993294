"""`GET /api/<service>/plugins`: every plugin of the service's seams with its state; one it had before and has
no more is `absent` (its package was removed)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mlife_shared.auth import Viewer
from mlife_shared.plugins import API_VERSION, SEAMS
from mlife_shared.plugins.registry import Plugins, PluginState, State
from mlife_shared.plugins.repository import PluginSeenRepository

if TYPE_CHECKING:
    from mlife_shared.app import ServiceSpec


class PluginRead(BaseModel):
    seam: str
    name: str
    state: State = Field(description="active | incompatible | missing_dependency | load_error | absent")
    description: str = ""
    error: str | None = Field(None, description="Why it is not active")
    entry_point: str
    distribution: str | None = None
    version: str | None = Field(None, description="Its distribution's version")
    api: str | None = Field(None, description="The plugin-API versions it supports")
    builtin: bool = False
    last_seen_at: datetime | None = Field(None, description="For an absent plugin: when it was last active")


class SeamRead(BaseModel):
    name: str
    group: str = Field(description="The Python entry point group a plugin registers in")
    summary: str


class PluginsRead(BaseModel):
    service: str
    api_version: str = Field(description="The plugin API this service offers")
    seams: list[SeamRead]
    plugins: list[PluginRead]


async def listing(service: str, registry: Plugins, db: Any) -> PluginsRead:
    """The registry's plugins, plus the ones seen before and found no more (absent)."""
    found = [PluginRead(**s.public()) for s in registry.states]
    present = {(s.seam, s.name) for s in registry.states}
    absent: list[PluginRead] = []
    if registry.seams:
        async with db.transaction() as session:
            for row in await PluginSeenRepository(session).seen(registry.seams):
                if (row.seam, row.name) not in present:
                    absent.append(PluginRead(
                        seam=row.seam, name=row.name, state="absent", description=row.description,
                        error="its package is no longer installed", entry_point=row.entry_point,
                        distribution=row.distribution, version=row.version, api=row.api, last_seen_at=row.last_seen_at))
    return PluginsRead(service=service, api_version=API_VERSION,
                       seams=[SeamRead(name=s, group=SEAMS[s].group, summary=SEAMS[s].summary) for s in registry.seams],
                       plugins=sorted(found + absent, key=lambda p: (p.seam, not p.builtin, p.name)))


async def record_seen(states: list[PluginState], db: Any) -> None:
    async with db.transaction() as session:
        await PluginSeenRepository(session).record(states)


def plugin_router(spec: ServiceSpec[Any]) -> APIRouter:
    router = APIRouter(tags=["plugins"])

    @router.get("/plugins", response_model=PluginsRead)
    async def list_plugins(request: Request, _: Viewer) -> PluginsRead:
        """Every plugin of this service's seams: active, incompatible (its plugin-API range), missing a dependency,
        failing to load (with the message), or absent (active once, its package since removed)."""
        return await listing(spec.name, request.app.state.plugins, request.app.state.db)

    return router
