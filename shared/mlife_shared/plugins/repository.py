"""Every query of `plugin_seen`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select

from mlife_shared.db import utcnow
from mlife_shared.plugins.models import PluginSeen
from mlife_shared.plugins.registry import PluginState
from mlife_shared.repository import Repository


class PluginSeenRepository(Repository):
    async def record(self, states: Iterable[PluginState]) -> None:
        """Upsert the active plugins as seen now."""
        rows = [{"seam": s.seam, "name": s.name, "entry_point": s.entry_point[:300], "distribution": s.distribution,
                 "version": s.version, "api": s.api, "description": s.description[:500], "last_seen_at": utcnow()}
                for s in states if s.state == "active"]
        if not rows:
            return
        statement = self.insert(PluginSeen).values(rows)
        keep = ("entry_point", "distribution", "version", "api", "description", "last_seen_at")
        await self.session.execute(statement.on_conflict_do_update(
            index_elements=["seam", "name"], set_={k: statement.excluded[k] for k in keep}))
        await self.session.flush()

    async def seen(self, seams: Iterable[str]) -> Sequence[PluginSeen]:
        return await self.all(select(PluginSeen).where(PluginSeen.seam.in_(list(seams)))
                              .order_by(PluginSeen.seam, PluginSeen.name))
