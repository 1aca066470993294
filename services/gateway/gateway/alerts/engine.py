"""The alert engine: public events in, alerts out, Alertmanager-like.

`AlertEngine.on_event` runs in the gateway hub's consumer transaction, once per public event. An event a rule
matches opens the alert of its group (rule + the values of the rule's `group_by` labels) as `pending`, or counts
into the one already open; nothing leaves the process there. `AlertEngine.tick` is the periodic job: a pending
alert fires once its group wait is over (an `AlertFiring` through the outbox and an e-mail row), a firing one
re-notifies at most once per repeat interval unless acknowledged, and resolves itself once its condition has
been clear (no event that meets it) for `resolve_after_seconds`. A pending alert that never fired (its rule was
disabled, or it went quiet within its group wait) closes without a notification: nobody was told of it. A
disabled rule matches no event; its firing alerts repeat no more and resolve. The clock is injectable: tests
drive time.

What each kind counts (the parameters are in `schemas.py`):
- critical_badcase: a badcase.created whose priority is at least `min_priority` (BAM's priority is a score; 40
  is a fresh critical badcase of a function of weight 1).
- badcase_frequency: a badcase.merged whose frequency has reached `threshold`. The function comes from the
  badcase's badcase.created, remembered here; a badcase created before the gateway saw it has none, so only
  rules without a function see it.
- badcase_surge: the badcase.created of the last window reach `min_count` and exceed `factor` × the mean of
  the `baseline_windows` windows before (samples kept per rule and group, pruned by the job).
- regression: deployment.blocked naming at least `min_regressed` regressed badcases. testing.completed carries
  only metrics (the gate compares them), so the gate's verdict is the one signal of a regression.
- deployment: deployment.blocked or deployment.failed.
- failure: task.failed, testing.failed, deployment.failed, at least `threshold` in `window_seconds` per group
  (default group: function, model name and version; task.failed names none of them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alerts.models import Alert, AlertBadcase, AlertRule, AlertSample
from gateway.alerts.notifier import Clock, apply_step, notify
from gateway.alerts.repository import (
    AlertBadcaseRepository,
    AlertRepository,
    AlertRuleRepository,
    AlertSampleRepository,
)
from gateway.alerts.schemas import (
    PARAMS,
    BadcaseFrequencyParams,
    BadcaseSurgeParams,
    CriticalBadcaseParams,
    DeploymentParams,
    FailureParams,
    RegressionParams,
)
from mlife_shared.db import new_id, utcnow
from mlife_shared.events import Envelope

KINDS_OF: dict[str, tuple[str, ...]] = {
    "badcase.created": ("critical_badcase", "badcase_surge"),
    "badcase.merged": ("badcase_frequency",),
    "deployment.blocked": ("regression", "deployment"),
    "deployment.failed": ("deployment", "failure"),
    "task.failed": ("failure",),
    "testing.failed": ("failure",),
}
LABEL_FIELDS = ("function", "model_name", "model_version", "badcase_id", "deployment_id", "task_id", "source")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _cut(value: str | None) -> str | None:
    return value[:200] if value is not None else None


def open_key(rule_id: Any, group_key: str) -> str:
    return hashlib.sha256(f"{rule_id}|{group_key}".encode()).hexdigest()


def matches(rule: AlertRule, subject: str, data: Any) -> bool:
    params = PARAMS[rule.kind].model_validate(rule.params)
    if isinstance(params, CriticalBadcaseParams):
        return data.priority is not None and bool(data.priority >= params.min_priority)
    if isinstance(params, BadcaseFrequencyParams):
        return bool(data.frequency >= params.threshold)
    if isinstance(params, RegressionParams):
        return len(data.regressed_badcases) >= params.min_regressed
    if isinstance(params, DeploymentParams | FailureParams):
        return subject in params.events
    return True  # badcase_surge: the counts decide


def summary_of(rule: AlertRule, subject: str, data: Any, labels: dict[str, str]) -> str:
    function = labels.get("function") or "any function"
    match rule.kind:
        case "critical_badcase":
            return f"critical badcase in {function} (priority {data.priority:g})"
        case "badcase_frequency":
            return f"badcase {data.badcase_id} of {function} seen {data.frequency} times"
        case "badcase_surge":
            return f"surge of new badcases in {function}"
        case "regression":
            return f"deployment {data.name} blocked: {len(data.regressed_badcases)} fixed badcase(s) regress"
    what = " ".join(x for x in (labels.get("model_name"), labels.get("model_version")) if x) or function
    reason = _text(getattr(data, "reason", None)) or "; ".join(getattr(data, "reasons", []))
    return f"{subject} ({what}): {reason}"[:1000]


@dataclass
class AlertEngine:
    clock: Clock = utcnow

    async def on_event(self, event: Envelope[Any], session: AsyncSession) -> None:
        """Called by the gateway hub once per public event, in its consumer's transaction."""
        kinds = KINDS_OF.get(event.type)
        if event.type == "badcase.created":
            await self._remember_badcase(event, session)
        if kinds is None:
            return
        labels = await self._labels(event, session)
        now = self.clock()
        for rule in await AlertRuleRepository(session).enabled_for(kinds, labels["function"] or None):
            if rule.kind in kinds and matches(rule, event.type, event.data):
                await self._observe(session, rule, event, labels, now)

    async def _remember_badcase(self, event: Envelope[Any], session: AsyncSession) -> None:
        data = event.data
        await AlertBadcaseRepository(session).remember({
            "badcase_id": data.badcase_id, "function": data.function[:100], "model_name": _cut(data.model_name),
            "model_version": _cut(data.model_version), "created_at": self.clock()})

    async def _labels(self, event: Envelope[Any], session: AsyncSession) -> dict[str, str]:
        labels = {name: _text(getattr(event.data, name, None)) for name in LABEL_FIELDS}
        labels["subject"] = event.type
        if event.type == "badcase.merged":
            known = await AlertBadcaseRepository(session).get(AlertBadcase, event.data.badcase_id)
            if known is not None:
                labels.update(function=known.function, model_name=_text(known.model_name),
                              model_version=_text(known.model_version))
        return labels

    async def _observe(self, session: AsyncSession, rule: AlertRule, event: Envelope[Any], labels: dict[str, str],
                       now: datetime) -> None:
        group = {name: labels.get(name, "") for name in rule.group_by}
        group_key = ",".join(f"{name}={value}" for name, value in group.items())
        summary = summary_of(rule, event.type, event.data, labels)
        counted = await self._counted(session, rule, group_key, now)
        if counted is None:
            return
        if counted:
            summary = f"{summary}: {counted}"
        key = open_key(rule.id, group_key)
        alerts = AlertRepository(session)
        for _ in range(3):  # the open alert may resolve between the two statements: the event opens the next one
            await alerts.open_or_find({
                "id": new_id(), "rule_id": rule.id, "open_key": key, "group_key": group_key, "labels": group,
                "function": (labels.get("function") or rule.function or "")[:100] or None, "status": "pending",
                "summary": summary, "count": 0, "started_at": now, "last_event_at": now})
            if await alerts.bump(key, now):
                return
        raise RuntimeError(f"alert group {group_key!r} of rule {rule.id} kept closing under this event")

    async def _counted(self, session: AsyncSession, rule: AlertRule, group_key: str, now: datetime) -> str | None:
        """For a counting rule: the sample is kept, then None when the condition does not hold, else what the
        counts were; "" for the other kinds (every matching event meets the condition)."""
        params = PARAMS[rule.kind].model_validate(rule.params)
        if isinstance(params, FailureParams) and params.threshold > 1:
            samples = AlertSampleRepository(session)
            await samples.add(AlertSample(rule_id=rule.id, group_key=group_key, at=now))
            window = timedelta(seconds=params.window_seconds)
            count = await samples.count_between(rule.id, group_key, now - window, now)
            return f"{count} in {params.window_seconds}s" if count >= params.threshold else None
        if isinstance(params, BadcaseSurgeParams):
            return await self._surge(session, rule, params, group_key, now)
        return ""

    async def _surge(self, session: AsyncSession, rule: AlertRule, params: BadcaseSurgeParams, group_key: str,
                     now: datetime) -> str | None:
        samples = AlertSampleRepository(session)
        await samples.add(AlertSample(rule_id=rule.id, group_key=group_key, at=now))
        window = timedelta(seconds=params.window_seconds)
        current = await samples.count_between(rule.id, group_key, now - window, now)
        before = await samples.count_between(rule.id, group_key, now - window * (params.baseline_windows + 1),
                                             now - window)
        usual = before / params.baseline_windows
        if current < params.min_count or current <= params.factor * usual:
            return None
        return f"{current} in the last {params.window_seconds}s, usually {usual:.1f}"

    # --- the periodic job ---------------------------------------------------------------------------------

    async def tick(self, session: AsyncSession, *, email_on: bool) -> dict[str, int]:
        """Fire, repeat and resolve what is due (rows locked: a second worker skips them); prune old samples."""
        now = self.clock()
        done = {"fired": 0, "repeated": 0, "resolved": 0, "dropped": 0}
        for alert, rule in await AlertRepository(session).open_with_rules():
            for step in self._steps(alert, rule, now):
                if step == "dropped":  # it never fired: nobody was told, so it closes without a word
                    apply_step(alert, "resolved", now, None)
                else:
                    await notify(session, alert, rule, step, now, email_on=email_on)
                done[step] += 1
        await self._prune(session, now)
        return done

    @staticmethod
    def _steps(alert: Alert, rule: AlertRule, now: datetime) -> list[str]:
        """What is due for one open alert. A disabled rule's alerts neither fire nor repeat; they still resolve."""
        quiet = now - alert.last_event_at >= timedelta(seconds=rule.resolve_after_seconds)
        if alert.status == "pending":
            if not (rule.enabled and now - alert.started_at >= timedelta(seconds=rule.group_wait_seconds)):
                return ["dropped"] if quiet else []
            return ["fired", "resolved"] if quiet else ["fired"]
        if quiet:
            return ["resolved"]
        due = alert.last_notified_at is not None and now - alert.last_notified_at >= timedelta(
            seconds=rule.repeat_interval_seconds)
        return ["repeated"] if due and rule.enabled and alert.acknowledged_at is None else []

    async def _prune(self, session: AsyncSession, now: datetime) -> None:
        """Samples older than the longest span any counting rule looks back (surge: its baseline windows)."""
        spans = [0]
        for rule in await AlertRuleRepository(session).list_rules():
            params = PARAMS[rule.kind].model_validate(rule.params)
            if isinstance(params, BadcaseSurgeParams):
                spans.append(params.window_seconds * (params.baseline_windows + 1))
            elif isinstance(params, FailureParams):
                spans.append(params.window_seconds)
        await AlertSampleRepository(session).prune(now - timedelta(seconds=max(spans)))
