from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update

from gateway.alerts.models import Alert, AlertBadcase, AlertNotification, AlertRule, AlertSample
from mlife_shared.db import cast_table
from mlife_shared.repository import Page, Repository

BATCH = 500


class AlertRuleRepository(Repository):
    async def list_rules(self) -> Sequence[AlertRule]:
        rules: Sequence[AlertRule] = await self.all(select(AlertRule).order_by(AlertRule.created_at, AlertRule.id))
        return rules

    async def enabled_for(self, kinds: Sequence[str], function: str | None) -> Sequence[AlertRule]:
        """The enabled rules of these kinds that watch `function` (a rule without a function watches all)."""
        statement = select(AlertRule).where(AlertRule.enabled.is_(True), AlertRule.kind.in_(kinds))
        if function is None:
            statement = statement.where(AlertRule.function.is_(None))
        else:
            statement = statement.where(or_(AlertRule.function.is_(None), AlertRule.function == function))
        rules: Sequence[AlertRule] = await self.all(statement.order_by(AlertRule.id))
        return rules


class AlertRepository(Repository):
    async def open_or_find(self, values: dict[str, Any]) -> None:
        """Insert the group's open alert unless one is open (`open_key` is unique: a concurrent event of the same
        group finds the row instead of opening a second)."""
        await self.session.execute(self.insert(cast_table(Alert)).values(**values)
                                   .on_conflict_do_nothing(index_elements=["open_key"]))

    async def bump(self, open_key: str, now: datetime) -> bool:
        """One more event in the group's open alert (an atomic increment: no lost update); False when no alert is
        open under the key (the job resolved it between the insert and this update)."""
        result = await self.session.execute(update(Alert).where(Alert.open_key == open_key)
                                            .values(count=Alert.count + 1, last_event_at=now))
        return bool(getattr(result, "rowcount", 0))

    async def open_with_rules(self) -> Sequence[tuple[Alert, AlertRule]]:
        """The pending and firing alerts with their rules, locked: a second worker running the job at the same
        time skips them (few rows: one per open group; the job decides which fire, repeat or resolve)."""
        statement = (select(Alert, AlertRule).join(AlertRule, AlertRule.id == Alert.rule_id)
                     .where(Alert.status.in_(("pending", "firing"))).order_by(Alert.started_at).limit(BATCH))
        rows = (await self.session.execute(self.lock(statement, skip_locked=True, of=Alert))).all()
        return [(alert, rule) for alert, rule in rows]

    async def listing(self, *, status: str, function: str | None, limit: int, offset: int) -> Page[Any]:
        statement = select(Alert, AlertRule).join(AlertRule, AlertRule.id == Alert.rule_id)
        if status == "firing":
            statement = statement.where(Alert.status.in_(("pending", "firing")))
        elif status == "resolved":
            statement = statement.where(Alert.status == "resolved")
        if function is not None:
            statement = statement.where(Alert.function == function)
        statement = statement.order_by(Alert.started_at.desc(), Alert.id)
        rows = (await self.session.execute(statement.limit(limit).offset(offset))).all()
        total = await self.count(statement)
        return Page(items=[(a, r) for a, r in rows], total=total, offset=offset, limit=limit)

    async def with_rule(self, alert_id: uuid.UUID, *, for_update: bool = False) -> tuple[Alert, AlertRule] | None:
        statement = self.lock(select(Alert, AlertRule).join(AlertRule, AlertRule.id == Alert.rule_id)
                              .where(Alert.id == alert_id), for_update=for_update, of=Alert)
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row is not None else None


class AlertNotificationRepository(Repository):
    async def for_alert(self, alert_id: uuid.UUID) -> Sequence[AlertNotification]:
        rows: Sequence[AlertNotification] = await self.all(
            select(AlertNotification).where(AlertNotification.alert_id == alert_id)
            .order_by(AlertNotification.created_at, AlertNotification.id))
        return rows

    async def due_emails(self, now: datetime, limit: int) -> Sequence[AlertNotification]:
        """E-mails to send now, locked so that two workers never send one twice (the other skips them)."""
        statement = (select(AlertNotification).where(AlertNotification.email_status == "pending",
                                                     AlertNotification.next_attempt_at <= now)
                     .order_by(AlertNotification.next_attempt_at).limit(limit))
        rows: Sequence[AlertNotification] = await self.all(self.lock(statement, skip_locked=True))
        return rows


class AlertSampleRepository(Repository):
    async def count_between(self, rule_id: uuid.UUID, group_key: str, start: datetime, end: datetime) -> int:
        """Samples with start < at <= end."""
        return await self.count(select(AlertSample.id).where(AlertSample.rule_id == rule_id,
                                                             AlertSample.group_key == group_key,
                                                             AlertSample.at > start, AlertSample.at <= end))

    async def prune(self, before: datetime) -> None:
        await self.session.execute(delete(AlertSample).where(AlertSample.at < before))


class AlertBadcaseRepository(Repository):
    async def remember(self, values: dict[str, Any]) -> None:
        await self.session.execute(self.insert(cast_table(AlertBadcase)).values(**values)
                                   .on_conflict_do_nothing(index_elements=["badcase_id"]))
