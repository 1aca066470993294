"""What an alert sends. `notify` records one firing, repeat or resolution: its event through the outbox and its
e-mail as an `alert_notification` row, in the caller's transaction. `EmailSender` is the job that sends those
rows over SMTP, in its own transaction and never in the consumer's: rows locked (a second worker skips them),
each attempt counted, a failure retried with backoff until `alert_email_max_attempts`."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alerts.models import Alert, AlertNotification, AlertRule
from gateway.alerts.repository import AlertNotificationRepository
from gateway.config import Settings
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import AlertFiring, AlertResolved
from mlife_shared.messaging import outbox

Clock = Callable[[], datetime]
EMAIL_BATCH = 20
_KIND = {"fired": "firing", "repeated": "repeat", "resolved": "resolved"}


def email_state(settings: Settings) -> str:
    """'on', or why alert e-mail is off (shown with every rule)."""
    return "on" if settings.smtp_host else "off: MLIFE_GATEWAY_SMTP_HOST is not set"


def apply_step(alert: Alert, step: str, now: datetime, by: str | None) -> None:
    if step == "fired":
        alert.status, alert.fired_at, alert.last_notified_at = "firing", now, now
    elif step == "repeated":
        alert.last_notified_at = now
    else:
        alert.status, alert.resolved_at, alert.resolved_by, alert.open_key = "resolved", now, by, None


async def notify(session: AsyncSession, alert: Alert, rule: AlertRule, step: str, now: datetime, *,
                 email_on: bool, by: str | None = None) -> None:
    """`step` (fired, repeated, resolved) applied to `alert`, its event added to the outbox, its e-mail queued."""
    apply_step(alert, step, now, by)
    fields = {"alert_id": alert.id, "rule_id": rule.id, "rule_name": rule.name, "kind": rule.kind,
              "function": alert.function, "group_key": alert.group_key, "severity": rule.severity,
              "summary": alert.summary, "count": alert.count, "started_at": alert.started_at, "labels": alert.labels}
    if step == "resolved":
        await outbox.add(session, AlertResolved(**fields, resolved_at=now, resolved_by=by))
    else:
        await outbox.add(session, AlertFiring(**fields))
    state = "RESOLVED" if step == "resolved" else "FIRING"
    subject = f"[MLife {rule.severity}] {state}: {rule.name} ({alert.group_key or 'all'})"
    body = "\n".join([
        f"{state}: {alert.summary}", f"Rule: {rule.name} ({rule.kind})", f"Group: {alert.group_key or 'all'}",
        f"Events: {alert.count}", f"Started: {alert.started_at.isoformat()}",
        *([f"Resolved: {now.isoformat()}" + (f" by {by}" if by else " (the condition cleared)")]
          if step == "resolved" else []),
        f"Alert: {alert.id}"])
    recipients = list(rule.email_to)
    session.add(AlertNotification(
        alert_id=alert.id, kind=_KIND[step], created_at=now, subject=subject[:500], body=body, recipients=recipients,
        email_status="pending" if email_on and recipients else "off", attempts=0, next_attempt_at=now))
    await session.flush()


def _send(settings: Settings, row: AlertNotification) -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(row.recipients)
    message["Subject"] = row.subject
    message.set_content(row.body)
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)


@dataclass
class EmailSender:
    settings: Settings
    clock: Clock = utcnow

    async def run(self, session: AsyncSession) -> int:
        """Send the e-mails that are due; how many went."""
        if not self.settings.smtp_host:
            return 0
        now = self.clock()
        sent = 0
        for row in await AlertNotificationRepository(session).due_emails(now, EMAIL_BATCH):
            row.attempts += 1
            try:
                await asyncio.to_thread(_send, self.settings, row)
            except (OSError, smtplib.SMTPException) as exc:
                row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                if row.attempts >= self.settings.alert_email_max_attempts:
                    row.email_status = "failed"
                else:
                    row.next_attempt_at = now + timedelta(seconds=30 * 2 ** (row.attempts - 1))
                continue
            row.email_status, row.sent_at, row.last_error = "sent", now, None
            sent += 1
        await session.flush()
        return sent
