"""The public event API's description: the AsyncAPI 3.0 document of every event subscribers can follow
(generated from the contract registry; rendered for people in docs/events.md). Public, like the OpenAPI
document: it describes, it holds no data."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request

from gateway.config import Settings
from mlife_shared.events.asyncapi import document

router = APIRouter(tags=["events"])


def public_nats_url(request: Request) -> str:
    """The NATS address subscribers are told to use: the gateway's own setting, without any credential."""
    settings: Settings = request.app.state.settings
    url = urlsplit((settings.events_nats_url or settings.nats_url).split(",")[0])  # a cluster's: its first node
    return f"{url.scheme or 'nats'}://{url.hostname or '127.0.0.1'}:{url.port or 4222}"


@router.get("/events/asyncapi.json")
async def asyncapi(server: Annotated[str, Depends(public_nats_url)]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of MLife's events: channels, streams, payload schemas, examples, guarantees."""
    return document(server)
