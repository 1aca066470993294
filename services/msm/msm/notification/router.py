from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from mlife_shared.app import SessionDep
from mlife_shared.auth import Maintainer
from msm.inputs import reject_nul
from msm.notification.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate
from msm.notification.service import WebhookService

router = APIRouter(tags=["webhooks"], dependencies=[Depends(reject_nul)])


def webhook_service(request: Request, session: SessionDep) -> WebhookService:
    return WebhookService(session, request.app.state.settings)


Service = Annotated[WebhookService, Depends(webhook_service)]


@router.post("/webhooks", status_code=201)
async def create_webhook(body: WebhookCreate, service: Service, user: Maintainer) -> WebhookCreated:
    """Subscribe a URL to MSM events; deliveries are signed `v1,base64(HMAC-SHA256(secret, id.timestamp.body))`."""
    sub = await service.create(body.url, body.events, body.secret, body.description, user.username)
    return WebhookCreated(**WebhookRead.model_validate(sub).model_dump(), secret=sub.secret)


@router.get("/webhooks")
async def list_webhooks(service: Service, _: Maintainer) -> list[WebhookRead]:
    """Every webhook subscription."""
    return [WebhookRead.model_validate(s) for s in await service.subscriptions()]


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: uuid.UUID, service: Service, _: Maintainer) -> WebhookRead:
    """One webhook subscription."""
    return WebhookRead.model_validate(await service.get(webhook_id))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, service: Service, _: Maintainer) -> WebhookRead:
    """Change a subscription's URL, events, description, or pause it."""
    return WebhookRead.model_validate(await service.update(webhook_id, body.model_dump(exclude_unset=True)))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: uuid.UUID, service: Service, _: Maintainer) -> None:
    """Remove a subscription and its delivery log."""
    await service.delete(webhook_id)


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries(webhook_id: uuid.UUID, service: Service, _: Maintainer,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[DeliveryRead]:
    """The delivery log of a subscription, newest first, with every attempt."""
    return [DeliveryRead.model_validate(d) for d in await service.deliveries(webhook_id, limit)]
