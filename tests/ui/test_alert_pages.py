"""The alerts in the browser: an engineer creates a rule on the Alerts page; an event of its function opens an
alert, which fires (the gateway worker's part is played here against the stack's gateway database, as the hub and
its job would); the dashboard shows it firing to a viewer; the engineer acknowledges it, sees its notification
history, and a maintainer resolves it. Text from a user (a rule named with HTML) stays text."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.alerts.engine import AlertEngine
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import DeploymentFailed
from tests.support.postgres import pg_url
from tests.support.stack import Stack
from tests.support.ui import Page, client, login, open_as


async def gateway_database(stack: Stack) -> str:
    """The URL of the stack's gateway database (the one with the alert tables)."""
    for name in stack.databases:
        engine = create_async_engine(pg_url(name))
        try:
            async with engine.connect() as conn:
                if await conn.scalar(sa.text("SELECT to_regclass('alert_rule') IS NOT NULL")):
                    return pg_url(name)
        finally:
            await engine.dispose()
    raise AssertionError("the stack has no gateway database")


async def fire(stack: Stack, function: str) -> None:
    """A deployment.failed of `function` through the alert engine, then the timing job (group wait 0: it fires)."""
    db = Database(await gateway_database(stack))
    try:
        async with db.transaction() as session:
            data = DeploymentFailed(deployment_id=uuid.uuid4(), function=function, reason="the port is taken")
            await AlertEngine().on_event(new_envelope(data), session)
        async with db.transaction() as session:
            await AlertEngine().tick(session, email_on=False)
    finally:
        await db.dispose()


async def switch(page: Page, stack: Stack, role: str, hash_: str | None = None) -> None:
    """Log out, then in as `role` (at the dashboard, or at `hash_`)."""
    await page.page.click("#logout")
    await page.page.wait_for_selector("form[aria-label='Log in']")
    await (open_as(page, stack, role, hash_) if hash_ else login(page, stack, role))


async def test_create_a_rule_see_it_fire_acknowledge_and_resolve(page: Page, stack: Stack) -> None:
    function = f"ui-alerts-{uuid.uuid4().hex[:6]}"
    name = f"<b>{function}</b> down"
    p = await open_as(page, stack, "engineer", "#/alerts")
    form = "form[aria-label='Create an alert rule']"
    await p.fill(f"{form} input[name=name]", name)
    await p.select_option(f"{form} select[name=kind]", "deployment")
    await p.fill(f"{form} input[name=function]", function)
    await p.fill(f"{form} input[name=group_wait_seconds]", "0")
    await p.fill(f"{form} input[name=group_by]", "function")
    await p.fill(f"{form} input[name=email_to]", "oncall@example.org")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector("#toast div:text('Alert rule created')")
    await p.wait_for_selector(f"main td:text-is('{name}')")
    assert await p.query_selector("main td b") is None, "a rule's name is shown as text, never as HTML"
    async with client(stack, "viewer") as c:
        [rule] = [r for r in (await c.get("/api/gateway/alert-rules")).json() if r["function"] == function]
    assert rule["kind"] == "deployment" and rule["params"]["events"] == ["deployment.blocked", "deployment.failed"]
    assert rule["email"].startswith("off"), "the stack's gateway has no SMTP server: the rule says e-mail is off"

    await fire(stack, function)
    await switch(page, stack, "viewer")
    await p.wait_for_selector(f"[data-testid=firing-alerts] td:text-is('{name}')")
    assert await p.query_selector("[data-testid=firing-alerts] button[aria-label^='acknowledge']") is None

    await switch(page, stack, "engineer", f"#/alerts?status=firing&function={function}")
    summary = f"deployment.failed ({function}): the port is taken"
    await p.click(f"main button[aria-label='acknowledge {summary}']")
    await p.wait_for_selector("#toast div:text('Acknowledged: no more repeats')")
    await p.wait_for_selector("main span:text('acknowledged by engineer-user')")
    await p.click("main button:text('History')")
    await p.wait_for_selector("[data-alert] td span.badge:text('firing')")
    assert await p.query_selector(f"main button[aria-label='resolve {summary}']") is None, "resolving is a maintainer's"

    await switch(page, stack, "maintainer", f"#/alerts?status=all&function={function}")
    await p.click(f"main button[aria-label='resolve {summary}']")
    await p.wait_for_selector("#toast div:text('Resolved')")
    async with client(stack, "viewer") as c:
        [alert] = (await c.get("/api/gateway/alerts", params={"status": "all", "function": function})).json()["items"]
    assert alert["status"] == "resolved" and alert["resolved_by"] == "maintainer-user"
    assert alert["acknowledged_by"] == "engineer-user" and alert["count"] == 1
    assert page.console_errors() == []
