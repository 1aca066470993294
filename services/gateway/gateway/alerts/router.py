import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from gateway.alerts.models import Alert, AlertRule
from gateway.alerts.notifier import email_state
from gateway.alerts.schemas import (
    AlertDetail,
    AlertPage,
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    AlertRuleUpdate,
    NotificationRead,
)
from gateway.alerts.service import AlertRuleService, AlertService
from gateway.config import Settings
from mlife_shared.app import SessionDep
from mlife_shared.auth import Engineer, Maintainer, Viewer
from mlife_shared.names import FunctionName

router = APIRouter(tags=["alerts"])


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def rule_service(session: SessionDep) -> AlertRuleService:
    return AlertRuleService(session)


async def alert_service(session: SessionDep, settings: SettingsDep) -> AlertService:
    return AlertService(session, email_on=bool(settings.smtp_host))


RuleServiceDep = Annotated[AlertRuleService, Depends(rule_service)]
AlertServiceDep = Annotated[AlertService, Depends(alert_service)]


def _rule(rule: AlertRule, settings: Settings) -> AlertRuleRead:
    email = email_state(settings) if rule.email_to else "off: the rule names no recipient"
    return AlertRuleRead.model_validate(rule).model_copy(update={"email": email})


def _alert(alert: Alert, rule: AlertRule, **extra: Any) -> Any:
    fields = AlertRead.model_validate(alert).model_dump()
    return {**fields, "rule_name": rule.name, "kind": rule.kind, "severity": rule.severity, **extra}


@router.get("/alert-rules")
async def list_rules(_: Viewer, service: RuleServiceDep, settings: SettingsDep) -> list[AlertRuleRead]:
    """Every alert rule, with whether its e-mail goes out."""
    return [_rule(r, settings) for r in await service.list_rules()]


@router.post("/alert-rules", status_code=201)
async def create_rule(body: AlertRuleCreate, identity: Engineer, service: RuleServiceDep,
                      settings: SettingsDep) -> AlertRuleRead:
    """A rule that raises alerts from events of one function (or all): its kind, parameters, grouping, timing and
    e-mail recipients (engineers)."""
    return _rule(await service.create(body, by=identity.username), settings)


@router.patch("/alert-rules/{rule_id}")
async def update_rule(rule_id: uuid.UUID, body: AlertRuleUpdate, _: Engineer, service: RuleServiceDep,
                      settings: SettingsDep) -> AlertRuleRead:
    """Change a rule's parameters, grouping, timing, recipients, or enable/disable it (engineers)."""
    return _rule(await service.update(rule_id, body), settings)


@router.get("/alerts")
async def list_alerts(_: Viewer, service: AlertServiceDep,
                      status: Literal["firing", "resolved", "all"] = "firing",
                      function: Annotated[FunctionName | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> AlertPage:
    """Alerts, newest first: firing (pending ones included), resolved, or all; optionally of one function."""
    page = await service.listing(status=status, function=function, limit=limit, offset=offset)
    return AlertPage(items=[AlertRead.model_validate(_alert(a, r)) for a, r in page.items], total=page.total,
                     next_offset=page.next_offset)


@router.get("/alerts/{alert_id}")
async def get_alert(alert_id: uuid.UUID, _: Viewer, service: AlertServiceDep) -> AlertDetail:
    """One alert with every notification it sent (firing, repeats, resolution) and their e-mail state."""
    alert, rule = await service.get(alert_id)
    history = [NotificationRead.model_validate(n) for n in await service.notifications(alert_id)]
    return AlertDetail.model_validate(_alert(alert, rule, notifications=history))


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(alert_id: uuid.UUID, identity: Engineer, service: AlertServiceDep) -> AlertRead:
    """Acknowledge a firing alert: it is being handled, so it repeats no more (engineers)."""
    alert, rule = await service.acknowledge(alert_id, by=identity.username)
    return AlertRead.model_validate(_alert(alert, rule))


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(alert_id: uuid.UUID, identity: Maintainer, service: AlertServiceDep) -> AlertRead:
    """Resolve an alert by hand; its resolution is sent once (maintainers)."""
    alert, rule = await service.resolve(alert_id, by=identity.username)
    return AlertRead.model_validate(_alert(alert, rule))
