import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.events.router import public_nats_url
from gateway.events.schemas import ReplayRequest
from gateway.subscribers.models import Subscriber
from gateway.subscribers.schemas import (
    Credentials,
    ReplayRead,
    SubscriberCreate,
    SubscriberCreated,
    SubscriberRead,
)
from gateway.subscribers.service import SubscriberService, durable_prefix
from mlife_shared.app import SessionDep
from mlife_shared.auth import Maintainer
from mlife_shared.messaging.natsauth import subscriber_user

router = APIRouter(tags=["subscribers"])


async def subscriber_service(session: SessionDep, request: Request) -> SubscriberService:
    nc = request.app.state.nats
    return SubscriberService(session, nc.jetstream() if nc is not None and nc.is_connected else None)


SubscriberServiceDep = Annotated[SubscriberService, Depends(subscriber_service)]
NatsUrl = Annotated[str, Depends(public_nats_url)]


async def _read(service: SubscriberService, row: Subscriber) -> SubscriberRead:
    return SubscriberRead(id=row.id, name=row.name, description=row.description, subjects=list(row.subjects),
                          filter=dict(row.filter), nats_user=subscriber_user(row.name), durable=durable_prefix(row.name),
                          created_by=row.created_by, created_at=row.created_at, rotated_at=row.rotated_at,
                          durables=await service.durable_states(row))


@router.post("/subscribers", status_code=201)
async def create_subscriber(body: SubscriberCreate, identity: Maintainer, service: SubscriberServiceDep,
                            nats_url: NatsUrl) -> SubscriberCreated:
    """An outside subscriber: its durables on the streams of its subjects and a NATS login of its own (read-only;
    the password is in this answer only) (maintainers)."""
    row, password = await service.create(body, by=identity.username)
    read = await _read(service, row)
    return SubscriberCreated(**read.model_dump(),
                             credentials=Credentials(nats_url=nats_url, nats_user=read.nats_user, password=password))


@router.get("/subscribers")
async def list_subscribers(_: Maintainer, service: SubscriberServiceDep) -> list[SubscriberRead]:
    """Every outside subscriber with its durables and how far each has read (maintainers)."""
    return [await _read(service, row) for row in await service.list_all()]


@router.get("/subscribers/{subscriber_id}")
async def get_subscriber(subscriber_id: uuid.UUID, _: Maintainer, service: SubscriberServiceDep) -> SubscriberRead:
    """One subscriber with each durable's pending count and acknowledgement floor (maintainers)."""
    return await _read(service, await service.get(subscriber_id))


@router.delete("/subscribers/{subscriber_id}", status_code=204, response_class=Response)
async def delete_subscriber(subscriber_id: uuid.UUID, _: Maintainer, service: SubscriberServiceDep) -> Response:
    """Remove a subscriber's durables and revoke its NATS login (maintainers)."""
    await service.delete(subscriber_id)
    return Response(status_code=204)


@router.post("/subscribers/{subscriber_id}/rotate")
async def rotate_subscriber(subscriber_id: uuid.UUID, _: Maintainer, service: SubscriberServiceDep,
                            nats_url: NatsUrl) -> Credentials:
    """A new NATS password for a subscriber, in this answer only; the old one is refused from now on
    (maintainers)."""
    row, password = await service.rotate(subscriber_id)
    return Credentials(nats_url=nats_url, nats_user=subscriber_user(row.name), password=password)


@router.post("/subscribers/{subscriber_id}/replay", status_code=201)
async def replay_subscriber(subscriber_id: uuid.UUID, body: ReplayRequest, identity: Maintainer,
                            service: SubscriberServiceDep) -> ReplayRead:
    """Re-deliver from a time (every durable) or from a stream's sequence (that durable); audited
    (maintainers)."""
    return ReplayRead.model_validate(await service.replay(subscriber_id, body, by=identity.username))


@router.get("/subscribers/{subscriber_id}/replays")
async def list_replays(subscriber_id: uuid.UUID, _: Maintainer, service: SubscriberServiceDep) -> list[ReplayRead]:
    """Who replayed this subscriber's events, when, and from where (maintainers)."""
    return [ReplayRead.model_validate(r) for r in await service.replays(subscriber_id)]
