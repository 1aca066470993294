"""Re-driving dead letters: after a fix, a maintainer has a dead-lettered event applied again by the consumer
it failed in, one letter or every pending letter of a consumer.

This is an edge that owns its transactions, as the consumer runner does: a letter's effect, its inbox row and
its "re-driven by … at …" mark commit together, so a re-drive takes effect exactly once — twice re-driven, or
re-driven after a redelivery already applied the event, it is recorded as already applied and changes
nothing. A handler that fails again rolls its work back; the letter stays pending with the error and the
count of attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from mlife_shared.db import Database, utcnow
from mlife_shared.errors import Conflict, NotFound, Unprocessable
from mlife_shared.messaging.consumer import ConsumerRunner, PoisonMessage, Subscription, durable_name, parse_data
from mlife_shared.messaging.models import DeadLetter
from mlife_shared.messaging.repository import DeadLetterRepository

log = structlog.get_logger(__name__)

Outcome = Literal["applied", "already_applied", "failed"]


@dataclass(frozen=True)
class Redriven:
    id: uuid.UUID
    consumer: str
    outcome: Outcome
    error: str | None = None


class RedriveFailed(Conflict):
    """The handler failed again: the dead letter stays, with the error."""


class Redriver:
    """Re-drives the dead letters of one service through its own subscriptions."""

    def __init__(self, db: Database, service: str, subscriptions: Sequence[Subscription]) -> None:
        self.db = db
        self.by_consumer = {durable_name(service, sub): sub for sub in subscriptions}

    async def redrive(self, letter_id: uuid.UUID, actor: str) -> Redriven:
        """One letter; raises RedriveFailed (409) when its handler fails again."""
        result = await self._redrive(letter_id, actor)
        if result.outcome == "failed":
            raise RedriveFailed(f"the {result.consumer} handler failed again: {result.error}")
        return result

    async def redrive_consumer(self, consumer: str, actor: str, *, limit: int) -> list[Redriven]:
        """Every pending letter of `consumer`, oldest first; a failing one does not stop the others."""
        self._subscription(consumer)
        async with self.db.transaction() as session:
            ids = await DeadLetterRepository(session).pending_ids(consumer, limit)
        results = []
        for letter_id in ids:
            try:
                results.append(await self._redrive(letter_id, actor))
            except (Conflict, NotFound, Unprocessable) as exc:  # re-driven meanwhile, or never applicable
                results.append(Redriven(letter_id, consumer, "failed", str(exc.message)))
        return results

    async def _note_failure(self, letter_id: uuid.UUID, error: str) -> str:
        """Record a failed attempt on the letter (its own transaction: the attempt's work was rolled back);
        returns the letter's consumer."""
        async with self.db.transaction() as session:
            await DeadLetterRepository(session).note_failed_redrive(letter_id, error)
            letter = await DeadLetterRepository(session).get(DeadLetter, letter_id)
        log.warning("redrive_failed", letter=str(letter_id), error=error[:500])
        return letter.consumer if letter is not None else "?"

    def _subscription(self, consumer: str) -> Subscription:
        sub = self.by_consumer.get(consumer)
        if sub is None:
            raise Conflict(f"this service has no consumer {consumer!r} (renamed or removed?); its consumers: "
                           f"{', '.join(sorted(self.by_consumer)) or 'none'}")
        return sub

    async def _redrive(self, letter_id: uuid.UUID, actor: str) -> Redriven:
        try:
            async with self.db.transaction() as session:
                letter = await DeadLetterRepository(session).get_for_update(DeadLetter, letter_id)
                if letter is None:
                    raise NotFound(f"no dead letter {letter_id}")
                if letter.redriven_at is not None:
                    raise Conflict(f"dead letter {letter_id} was re-driven at {letter.redriven_at.isoformat()} by "
                                   f"{letter.redriven_by} ({letter.redrive_note})")
                sub = self._subscription(letter.consumer)
                try:
                    envelope = parse_data(letter.payload.encode(), None, expected=sub.expected)
                except PoisonMessage as exc:
                    raise Unprocessable(f"dead letter {letter_id} can never be applied ({exc.reason}): {exc}") from exc
                applied = await ConsumerRunner.apply_in(session, letter.consumer, sub, envelope)
                outcome: Outcome = "applied" if applied else "already_applied"
                letter.redriven_at, letter.redriven_by = utcnow(), actor
                letter.redrive_note = outcome.replace("_", " ")
                consumer = letter.consumer
        except Unprocessable as exc:
            await self._note_failure(letter_id, str(exc.message))
            raise
        except (NotFound, Conflict):
            raise
        except Exception as exc:  # noqa: BLE001 - the handler's failure is recorded on the letter, not a 500
            error = f"{type(exc).__name__}: {exc}"
            return Redriven(letter_id, await self._note_failure(letter_id, error), "failed", error)
        log.info("dead_letter_redriven", letter=str(letter_id), consumer=consumer, outcome=outcome, actor=actor)
        return Redriven(letter_id, consumer, outcome)
