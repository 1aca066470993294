"""Every service's dead-letter routes (under `/api/<service>/dead-letters`): read them (viewers), and re-drive
them after a fix (maintainers; see messaging/redrive.py for the exactly-once rules)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mlife_shared.auth import Maintainer, Viewer
from mlife_shared.db import Database
from mlife_shared.errors import BadRequest
from mlife_shared.messaging.models import DeadLetter
from mlife_shared.messaging.redrive import Outcome, Redriven, Redriver
from mlife_shared.messaging.repository import DeadLetterRepository
from mlife_shared.objectstore import ScopedStore, make_store

if TYPE_CHECKING:
    from mlife_shared.app import ServiceSpec


class DeadLetterRead(BaseModel):
    id: str
    consumer: str
    subject: str
    event_id: str | None
    reason: str
    error: str
    deliveries: int
    created_at: datetime
    payload: str
    redriven_at: datetime | None = Field(None, description="When a re-drive applied it (or found it applied)")
    redriven_by: str | None = Field(None, description="The maintainer who re-drove it")
    redrive_note: str | None = Field(None, description="applied | already applied")
    redrive_error: str | None = Field(None, description="The last failed re-drive's error")
    redrives: int = Field(0, description="Failed re-drive attempts")

    @classmethod
    def of(cls, row: DeadLetter) -> DeadLetterRead:
        return cls(id=str(row.id), consumer=row.consumer, subject=row.subject, event_id=row.event_id,
                   reason=row.reason, error=row.error, deliveries=row.deliveries, created_at=row.created_at,
                   payload=row.payload, redriven_at=row.redriven_at, redriven_by=row.redriven_by,
                   redrive_note=row.redrive_note, redrive_error=row.redrive_error, redrives=row.redrives or 0)


class RedriveRead(BaseModel):
    id: uuid.UUID
    consumer: str
    outcome: Outcome = Field(description="applied: its effect is done now; already_applied: a delivery had "
                                         "applied it (nothing changed); failed: the handler failed again")
    error: str | None = None

    @classmethod
    def of(cls, r: Redriven) -> RedriveRead:
        return cls(id=r.id, consumer=r.consumer, outcome=r.outcome, error=r.error)


def redriver(request: Request, spec: ServiceSpec[Any]) -> Redriver:
    """The service's subscriptions, bound to a context as its worker binds them."""
    from mlife_shared.app import ServiceContext

    app = request.app
    if not spec.has_worker:  # no consumer, so nothing to re-drive (and no store to open for it)
        return Redriver(app.state.db, spec.name, [])
    store = getattr(app.state, "raw_store", None) or make_store(app.state.settings)
    ctx = ServiceContext(app.state.settings, store, ScopedStore(store, spec.name))
    return Redriver(app.state.db, spec.name, spec.subscriptions(ctx))


def dead_letter_router(spec: ServiceSpec[Any]) -> APIRouter:
    router = APIRouter()  # tagged "ops" by the ops router it is part of (a tag twice breaks Swagger UI)

    @router.get("/dead-letters")
    async def dead_letters(request: Request, _: Viewer, consumer: str | None = None,
                           state: Literal["pending", "redriven"] | None = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[DeadLetterRead]:
        """Messages that no handler could apply, newest first, with the reason (and, once re-driven, by whom)."""
        db: Database = request.app.state.db
        async with db.transaction() as session:
            rows = await DeadLetterRepository(session).list(limit=limit, consumer=consumer, state=state)
            return [DeadLetterRead.of(r) for r in rows]

    # One route for both forms: the merged OpenAPI is at the size where Swagger UI (the vendored 5.x) stops
    # rendering operations, and each route here counts five times (one per service).
    @router.post("/dead-letters/redrive", responses={409: {"description": "(id) the handler failed again, or it "
                 "was re-driven already"}, 422: {"description": "(id) it can never be applied (malformed)"}})
    async def redrive(request: Request, who: Maintainer, id: uuid.UUID | None = None,  # noqa: A002 - the API's name
                      consumer: Annotated[str | None, Query(min_length=1)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[RedriveRead]:
        """Apply dead-lettered events again with the consumer they failed in (after a fix), each exactly once:
        `id` one letter (an error if it fails again), or `consumer` every pending letter of that consumer, oldest
        first (one failing again does not stop the rest)."""
        if (id is None) == (consumer is None):
            raise BadRequest("give exactly one of `id` (one dead letter) or `consumer` (all of its pending letters)")
        if id is not None:
            return [RedriveRead.of(await redriver(request, spec).redrive(id, who.username))]
        results = await redriver(request, spec).redrive_consumer(str(consumer), who.username, limit=limit)
        return [RedriveRead.of(r) for r in results]

    return router
