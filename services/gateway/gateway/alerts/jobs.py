"""The alert jobs the gateway worker runs: timing (fire, repeat, resolve) and e-mail, each in its own
transaction, so an e-mail is sent only for what committed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alerts.engine import AlertEngine
from gateway.alerts.notifier import EmailSender
from gateway.config import Settings
from mlife_shared.app import ServiceContext
from mlife_shared.jobs import Job


def alert_jobs(ctx: ServiceContext[Settings]) -> list[Job]:
    settings = ctx.settings
    engine = AlertEngine()
    sender = EmailSender(settings)

    async def tick(session: AsyncSession) -> dict[str, int]:
        return await engine.tick(session, email_on=bool(settings.smtp_host))

    return [Job("alerts", settings.alerts_interval_seconds, tick, first_delay_seconds=1.0),
            Job("alert-emails", settings.alerts_interval_seconds, sender.run, first_delay_seconds=1.0)]
