"""The Webhooks page in Chromium against the real platform (the gateway's worker sends): a maintainer creates a
webhook (its secret shown once), a registered model reaches the receiver signed as Standard Webhooks, the delivery
log shows it delivered with its attempt, "Send test" sends a contract example marked test, "Replay from" sends the
event again with the same webhook-id and lists the replay, the secret is rotated (both sign meanwhile), the webhook
is edited, paused and deleted."""

from __future__ import annotations

import json
import uuid
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support.stack import Stack
from tests.support.ui import Page, client, eventually, open_as, register_model, require
from tests.support.webhooks import Receiver

LOCAL_TEN_MINUTES_AGO = """() => { const d = new Date(Date.now() - 600000), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; }"""


async def rerendered(p: Any, section: str, button: str) -> None:
    """Click `button`, whose action re-renders `section`, and wait until the section shown is the new one (the
    old element is gone), so that no render is pending when the test goes on."""
    old = await p.wait_for_selector(section)
    await p.click(button)
    await old.wait_for_element_state("hidden")
    await p.wait_for_selector(section)


async def _create(p: Any, url: str, subjects: str) -> str:
    form = "form[aria-label='Create a webhook']"
    await p.fill(f"{form} input[name=url]", url)
    await p.fill(f"{form} input[name=subjects]", subjects)
    await p.click(f"{form} button[type=submit]")
    return str(await (await p.wait_for_selector("pre[aria-label='signing secret']")).text_content())


async def test_create_deliver_test_replay_rotate_edit_and_delete(page: Page, stack: Stack) -> None:
    require(stack, "msm")
    name = f"ui-hook-{uuid.uuid4().hex[:6]}"
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")  # the stack allow-lists the name `localhost`
        p = await open_as(page, stack, "maintainer", "#/webhooks")
        secret = await _create(p, url, "model.registered")
        row = f"section:has(h2:text-is('Webhooks')) tbody tr:has-text('{url}')"
        await p.wait_for_selector(row)
        await register_model(stack, name)

        def mine() -> list[dict[str, Any]]:
            return [r for r in receiver.requests if json.loads(r["body"])["data"].get("name") == name]

        first = (await eventually(lambda: _ready(mine()), "the model.registered delivery"))[0]
        assert Webhook(secret).verify(first["body"], first["headers"])["type"] == "model.registered"

        await p.click(f"{row} button:text('Deliveries')")
        log = "section[data-webhook]"
        await p.wait_for_selector(f"{log} .badge:text('active')")

        async def _shown() -> bool:
            await rerendered(p, log, f"{log} button:text('Refresh')")
            return await p.query_selector(f"{log} tbody tr:has(.badge:text('delivered'))") is not None

        await eventually(_shown, "the delivery shown as delivered")

        await p.select_option(f"{log} form[aria-label='Send a test event'] select[name=subject]", "deployment.blocked")
        await rerendered(p, log, f"{log} button:text('Send test')")
        tests = await eventually(lambda: _ready([e for e in receiver.events() if e.get("test")]), "the test event")
        assert [e["type"] for e in tests] == ["deployment.blocked"]

        await p.fill(f"{log} input[name=since]", await p.evaluate(LOCAL_TEN_MINUTES_AGO))
        await rerendered(p, log, f"{log} button:text('Replay')")
        again = await eventually(lambda: _ready(mine()[1:]), "the replayed delivery")
        assert again[0]["headers"]["webhook-id"] == first["headers"]["webhook-id"]
        await p.wait_for_selector(f"{log} h3:text('Replays') + table tbody tr")

        await p.click(f"{row} button:text('Rotate secret')")
        await p.wait_for_selector("pre[aria-label='signing secret']:not(:text-is('" + secret + "'))")
        rotated = str(await p.text_content("pre[aria-label='signing secret']"))
        assert rotated.startswith("whsec_") and rotated != secret

        await p.click(f"{log} summary:text('Edit')")
        edit = f"{log} form[aria-label='Edit the webhook']"
        await p.fill(f"{edit} input[name=subjects]", "model.>, deployment.*")
        await p.fill(f"{edit} input[name=functions]", "ocr")
        await rerendered(p, log, f"{edit} button[type=submit]")  # saving re-renders the log, its Edit closed
        await p.wait_for_selector(f"{row}:has-text('deployment.*')")
        async with client(stack, "engineer") as c:
            [hook] = [w for w in (await c.get("/api/gateway/webhooks")).json() if w["url"] == url]
        assert hook["subjects"] == ["deployment.*", "model.>"] and hook["filter"]["function"] == ["ocr"]

        # a version pin the platform does not serve is refused with what to fix, and nothing changes
        await p.click(f"{log} summary:text('Edit')")
        await p.fill(f"{edit} input[name=versions]", "deployment.failed=7")
        await p.click(f"{edit} button[type=submit]")
        await p.wait_for_selector("#toast div:has-text('deployment.failed has no version 7 served')")
        async with client(stack, "engineer") as c:
            [hook] = [w for w in (await c.get("/api/gateway/webhooks")).json() if w["url"] == url]
        assert hook["versions"] == {}

        await p.click(f"{row} button:text('Pause')")
        await p.wait_for_selector(f"{row} .badge:text('paused')")
        async with p.expect_response(lambda r: r.request.method == "DELETE" and "/api/gateway/webhooks/" in r.url) as sent:
            await p.click(f"{row} button:text('Delete')")
        deleted = await sent.value
        assert deleted.status == 204, (deleted.status, await deleted.text())  # what failed, if it did
        await p.wait_for_selector(row, state="detached")
    assert page.console_errors(expected_statuses=(422,)) == []  # the refused pin


async def _ready(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return items or None


async def test_an_engineer_reads_the_log_and_manages_nothing(page: Page, stack: Stack) -> None:
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        async with client(stack, "maintainer") as c:
            made = await c.post("/api/gateway/webhooks", json={"url": url, "subjects": ["dataset.*"]})
            assert made.status_code == 201, made.text
        p = await open_as(page, stack, "engineer", "#/webhooks")
        row = f"section:has(h2:text-is('Webhooks')) tbody tr:has-text('{url}')"
        await p.click(f"{row} button:text('Deliveries')")
        await p.wait_for_selector("section[data-webhook] h3:text('Replays')")
        for absent in ("form[aria-label='Create a webhook']", "form[aria-label='Send a test event']",
                       "form[aria-label='Replay from']", f"{row} button:text('Delete')"):
            assert await p.query_selector(absent) is None, absent
        async with client(stack, "maintainer") as c:
            assert (await c.delete(f"/api/gateway/webhooks/{made.json()['id']}")).status_code == 204
    assert page.console_errors() == []
