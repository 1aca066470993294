from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from gateway.events.schemas import ReplayRequest
from gateway.webhooks.models import Webhook
from gateway.webhooks.replay import ReplayService
from gateway.webhooks.schemas import (
    AttemptRead,
    DeliveryPage,
    DeliveryRead,
    ReplayRead,
    SecretRotated,
    SubjectRead,
    TestDelivery,
    WebhookCreate,
    WebhookCreated,
    WebhookFilter,
    WebhookRead,
    WebhookUpdate,
)
from gateway.webhooks.service import WebhookService, has_function, subject_stream
from mlife_shared.app import SessionDep
from mlife_shared.auth import Engineer, Maintainer, Viewer
from mlife_shared.events.asyncapi import public_events

router = APIRouter(tags=["webhooks"])


async def webhook_service(request: Request, session: SessionDep) -> WebhookService:
    return WebhookService(session, request.app.state.settings)


async def replay_service(request: Request, session: SessionDep) -> ReplayService:
    return ReplayService(session, request.app.state.settings, request.app.state.nats)


Service = Annotated[WebhookService, Depends(webhook_service)]
Replays = Annotated[ReplayService, Depends(replay_service)]


def _read(webhook: Webhook) -> WebhookRead:
    return WebhookRead(id=webhook.id, url=webhook.url, description=webhook.description, subjects=webhook.subjects,
                       filter=WebhookFilter(function=webhook.functions), versions=webhook.versions or {},
                       active=webhook.active,
                       disabled_reason=webhook.disabled_reason, previous_secret_until=webhook.previous_secret_until,
                       created_by=webhook.created_by, created_at=webhook.created_at, updated_at=webhook.updated_at)


@router.get("/webhook-subjects")
async def webhook_subjects(_: Viewer) -> list[SubjectRead]:
    """The public events a webhook can subscribe to (patterns such as `badcase.*` match among these)."""
    return [SubjectRead(subject=s, stream=subject_stream(s), description=(m.__doc__ or "").strip(),
                        has_function=has_function(s)) for s, m in public_events().items()]


@router.post("/webhooks", status_code=201)
async def create_webhook(body: WebhookCreate, service: Service, user: Maintainer) -> WebhookCreated:
    """Send the public events matching `subjects` (and `filter`) to a URL, signed as Standard Webhooks."""
    webhook = await service.create(body, user.username)
    return WebhookCreated(**_read(webhook).model_dump(), secret=webhook.secret)


@router.get("/webhooks")
async def list_webhooks(service: Service, _: Engineer) -> list[WebhookRead]:
    """Every webhook (never its secret)."""
    return [_read(w) for w in await service.all()]


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: uuid.UUID, service: Service, _: Engineer) -> WebhookRead:
    """One webhook."""
    return _read(await service.get(webhook_id))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, service: Service, _: Maintainer) -> WebhookRead:
    """Change a webhook's URL, subjects, filter or description; `active: false` pauses it, `true` resumes it."""
    return _read(await service.update(webhook_id, body.model_dump(exclude_unset=True)))


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: uuid.UUID, service: Service, _: Maintainer) -> Response:
    """Remove a webhook, its deliveries and their log."""
    await service.delete(webhook_id)
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(webhook_id: uuid.UUID, service: Service, _: Maintainer) -> SecretRotated:
    """A new signing secret (shown once); the old one also signs for `webhook_secret_rotation_hours`."""
    webhook = await service.rotate(webhook_id)
    assert webhook.previous_secret_until is not None
    return SecretRotated(secret=webhook.secret, previous_secret_until=webhook.previous_secret_until)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(webhook_id: uuid.UUID, service: Service, _: Engineer,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50,
                          offset: Annotated[int, Query(ge=0)] = 0) -> DeliveryPage:
    """The webhook's deliveries, newest first, each with every attempt (status code, error, duration)."""
    page, attempts = await service.deliveries(webhook_id, limit=limit, offset=offset)
    items = [DeliveryRead.model_validate(d).model_copy(
        update={"log": [AttemptRead.model_validate(a) for a in attempts[d.id]]}) for d in page.items]
    return DeliveryPage(items=items, total=page.total, next_offset=page.next_offset)


@router.post("/webhooks/{webhook_id}/test", status_code=202)
async def send_test(webhook_id: uuid.UUID, body: TestDelivery, service: Service, _: Maintainer) -> DeliveryRead:
    """Queue a sample event of `subject` (its contract's example, `"test": true`) for this webhook."""
    return DeliveryRead.model_validate(await service.send_test(webhook_id, body.subject))


@router.post("/webhooks/{webhook_id}/replay", status_code=202)
async def replay(webhook_id: uuid.UUID, body: ReplayRequest, replays: Replays, user: Maintainer) -> ReplayRead:
    """Queue again the matching events stored since a time (or of one stream from a sequence), same ids."""
    return ReplayRead.model_validate(await replays.replay(webhook_id, body, user.username))


@router.get("/webhooks/{webhook_id}/replays")
async def list_replays(webhook_id: uuid.UUID, replays: Replays, _: Engineer) -> list[ReplayRead]:
    """Who replayed what into this webhook, and when (newest first)."""
    return [ReplayRead.model_validate(r) for r in await replays.history(webhook_id)]
