from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlife_shared.app import SessionDep
from mlife_shared.auth import Maintainer
from msm.inputs import StrictIn, reject_nul
from msm.notification.repository import WebhookRepository
from msm.notification.service import SUBJECTS, WebhookService

router = APIRouter(tags=["webhooks"], dependencies=[Depends(reject_nul)])


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(SUBJECTS) - {"*"})
    if unknown:
        raise ValueError(f"unknown events {unknown}; choose from {list(SUBJECTS)} or '*'")
    return events


class WebhookCreate(StrictIn):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    secret: str | None = Field(None, min_length=16, max_length=200, description="Generated when omitted")
    description: str = Field("", max_length=2000)
    _events = field_validator("events")(_check_events)


class WebhookUpdate(StrictIn):
    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=20)
    active: bool | None = None
    description: str | None = Field(None, max_length=2000)
    _events = field_validator("events")(lambda v: _check_events(v) if v is not None else v)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    description: str
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret; shown only now")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    event_id: uuid.UUID
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    log: list[dict[str, object]]
    created_at: datetime
    delivered_at: datetime | None


def _service(request: Request, session: SessionDep) -> WebhookService:
    return WebhookService(session, request.app.state.settings)


@router.post("/webhooks", status_code=201)
async def create_webhook(body: WebhookCreate, request: Request, session: SessionDep,
                         user: Maintainer) -> WebhookCreated:
    """Subscribe a URL to MSM events; deliveries are signed `v1,base64(HMAC-SHA256(secret, id.timestamp.body))`."""
    sub = await _service(request, session).create(body.url, body.events, body.secret, body.description,
                                                  user.username)
    return WebhookCreated(**WebhookRead.model_validate(sub).model_dump(), secret=sub.secret)


@router.get("/webhooks")
async def list_webhooks(session: SessionDep, _: Maintainer) -> list[WebhookRead]:
    """Every webhook subscription."""
    return [WebhookRead.model_validate(s) for s in await WebhookRepository(session).list()]


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: uuid.UUID, request: Request, session: SessionDep, _: Maintainer) -> WebhookRead:
    """One webhook subscription."""
    return WebhookRead.model_validate(await _service(request, session).get(webhook_id))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, request: Request, session: SessionDep,
                         _: Maintainer) -> WebhookRead:
    """Change a subscription's URL, events, description, or pause it."""
    sub = await _service(request, session).update(webhook_id, body.model_dump(exclude_unset=True))
    return WebhookRead.model_validate(sub)


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: uuid.UUID, request: Request, session: SessionDep, _: Maintainer) -> None:
    """Remove a subscription and its delivery log."""
    await _service(request, session).delete(webhook_id)


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries(webhook_id: uuid.UUID, request: Request, session: SessionDep, _: Maintainer,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[DeliveryRead]:
    """The delivery log of a subscription, newest first, with every attempt."""
    await _service(request, session).get(webhook_id)
    return [DeliveryRead.model_validate(d) for d in await WebhookRepository(session).deliveries(webhook_id, limit)]
