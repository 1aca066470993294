"""Alert rules (engineers write them) and alerts as people see and act on them: list, read with what was
sent, acknowledge (no more repeats), resolve by hand (maintainers). Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alerts.exceptions import AlertNotFound, AlertResolvedAlready, AlertRuleNotFound, InvalidAlertRule
from gateway.alerts.models import Alert, AlertNotification, AlertRule
from gateway.alerts.notifier import Clock, apply_step, notify
from gateway.alerts.repository import AlertNotificationRepository, AlertRepository, AlertRuleRepository
from gateway.alerts.schemas import (
    DEFAULT_GROUP_BY,
    DEFAULT_RESOLVE_AFTER,
    PARAMS,
    AlertRuleCreate,
    AlertRuleUpdate,
)
from mlife_shared.db import utcnow
from mlife_shared.repository import Page


def checked_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The kind's parameters with their defaults, or a 422 naming each one to fix."""
    try:
        return PARAMS[kind].model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        problems = ["params." + ".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        raise InvalidAlertRule(f"{kind}: " + "; ".join(problems)) from None


def checked_group_by(group_by: Sequence[str]) -> list[str]:
    if len(set(group_by)) != len(group_by):
        raise InvalidAlertRule("group_by: name each label once")
    return list(group_by)


def default_resolve_after(params: dict[str, Any]) -> int:
    return int(params.get("window_seconds", DEFAULT_RESOLVE_AFTER))


class AlertRuleService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.rules = AlertRuleRepository(session)

    async def list_rules(self) -> Sequence[AlertRule]:
        return await self.rules.list_rules()

    async def get(self, rule_id: uuid.UUID) -> AlertRule:
        rule = await self.rules.get(AlertRule, rule_id)
        if rule is None:
            raise AlertRuleNotFound(f"no alert rule {rule_id}")
        return rule

    async def create(self, body: AlertRuleCreate, *, by: str) -> AlertRule:
        params = checked_params(body.kind, body.params)
        group_by = checked_group_by(body.group_by if body.group_by is not None else DEFAULT_GROUP_BY[body.kind])
        now = utcnow()
        return await self.rules.add(AlertRule(
            name=body.name, kind=body.kind, function=body.function, params=params, severity=body.severity,
            group_by=group_by, group_wait_seconds=body.group_wait_seconds,
            repeat_interval_seconds=body.repeat_interval_seconds,
            resolve_after_seconds=body.resolve_after_seconds or default_resolve_after(params),
            email_to=list(body.email_to), enabled=body.enabled, created_by=by, created_at=now, updated_at=now))

    async def update(self, rule_id: uuid.UUID, body: AlertRuleUpdate) -> AlertRule:
        """Only the fields sent change; new params are checked against the rule's kind (its kind and function
        stay: a different one is a different rule)."""
        rule = await self.get(rule_id)
        changes = body.model_dump(exclude_unset=True)
        if changes.get("params") is not None:
            changes["params"] = checked_params(rule.kind, changes["params"])
        if changes.get("group_by") is not None:
            changes["group_by"] = checked_group_by(changes["group_by"])
        for name, value in changes.items():
            if value is None:
                raise InvalidAlertRule(f"{name}: give a value (null is not one)")
            setattr(rule, name, value)
        rule.updated_at = utcnow()
        await self.session.flush()
        return rule


class AlertService:
    def __init__(self, session: AsyncSession, *, email_on: bool, clock: Clock = utcnow) -> None:
        self.session = session
        self.alerts = AlertRepository(session)
        self.email_on = email_on
        self.clock = clock

    async def listing(self, *, status: str, function: str | None, limit: int, offset: int) -> Page[Any]:
        return await self.alerts.listing(status=status, function=function, limit=limit, offset=offset)

    async def get(self, alert_id: uuid.UUID, *, for_update: bool = False) -> tuple[Alert, AlertRule]:
        found = await self.alerts.with_rule(alert_id, for_update=for_update)
        if found is None:
            raise AlertNotFound(f"no alert {alert_id}")
        return found

    async def notifications(self, alert_id: uuid.UUID) -> Sequence[AlertNotification]:
        return await AlertNotificationRepository(self.session).for_alert(alert_id)

    async def acknowledge(self, alert_id: uuid.UUID, *, by: str) -> tuple[Alert, AlertRule]:
        """Seen and being handled: no more repeats (it still resolves, and a new alert opens after that)."""
        alert, rule = await self.get(alert_id, for_update=True)
        if alert.status == "resolved":
            raise AlertResolvedAlready(f"alert {alert_id} is resolved already")
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = self.clock(), by
            await self.session.flush()
        return alert, rule

    async def resolve(self, alert_id: uuid.UUID, *, by: str) -> tuple[Alert, AlertRule]:
        """A maintainer closes the alert: its resolution goes out once, as when it clears by itself."""
        alert, rule = await self.get(alert_id, for_update=True)
        if alert.status == "resolved":
            raise AlertResolvedAlready(f"alert {alert_id} is resolved already")
        if alert.status == "pending":  # never fired: nobody was told, so there is nothing to take back
            apply_step(alert, "resolved", self.clock(), by)
            await self.session.flush()
        else:
            await notify(self.session, alert, rule, "resolved", self.clock(), email_on=self.email_on, by=by)
        return alert, rule
