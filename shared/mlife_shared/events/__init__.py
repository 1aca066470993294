"""Event contracts: the envelope, the registry of every subject, and the payload models."""

from mlife_shared.events.envelope import Envelope, EventData, new_envelope
from mlife_shared.events.registry import (
    EVENTS,
    event_model,
    register,
    stream_for_subject,
    streams,
)

__all__ = ["EVENTS", "Envelope", "EventData", "event_model", "new_envelope", "register",
           "stream_for_subject", "streams"]
