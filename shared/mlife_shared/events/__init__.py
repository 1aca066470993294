"""Event contracts: the envelope, the registry of every subject, and the payload models.

Import order matters and is the only place it does: the registry first (it imports no contract), then
`contracts`, whose classes register themselves, so the registry is complete once this package is imported
(importing `mlife_shared.events.registry` imports this package first)."""

from mlife_shared.events.envelope import Envelope, EventData, new_envelope
from mlife_shared.events.registry import (
    EVENTS,
    event_model,
    register,
    stream_for_subject,
    streams,
)
from mlife_shared.events import contracts  # noqa: E402,F401,I001 - registers every contract of ARCHITECTURE §2

__all__ = ["EVENTS", "Envelope", "EventData", "contracts", "event_model", "new_envelope", "register",
           "stream_for_subject", "streams"]
