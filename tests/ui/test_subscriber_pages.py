"""The Subscribers page in Chromium against the real platform: a maintainer creates an outside subscriber (its
NATS password shown once, with the SDK call), sees its durables on the two streams that hold `model.>` with their
pending counts, replays it from a time (listed in its audit), rotates its password and deletes it (its durables
and login go); an engineer is told the page is for maintainers."""

from __future__ import annotations

import uuid

from tests.support.stack import Stack
from tests.support.ui import Page, client, open_as

LOCAL_TEN_MINUTES_AGO = """() => { const d = new Date(Date.now() - 600000), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; }"""


async def test_create_inspect_replay_rotate_and_delete_a_subscriber(page: Page, stack: Stack) -> None:
    name = f"ui-sub-{uuid.uuid4().hex[:6]}"
    p = await open_as(page, stack, "maintainer", "#/subscribers")
    form = "form[aria-label='Create a subscriber']"
    await p.fill(f"{form} input[name=name]", name)
    await p.fill(f"{form} input[name=subjects]", "model.>")
    await p.fill(f"{form} input[name=filter]", "function=digits")
    await p.fill(f"{form} input[name=description]", "<b>acme</b> dashboard")
    await p.click(f"{form} button[type=submit]")
    password = str(await (await p.wait_for_selector("pre[aria-label='subscriber password']")).text_content())
    assert len(password) >= 40 and f'user="sub-{name}"' in str(await p.text_content("div[role=status]"))

    row = f"section:has(h2:text-is('Subscribers')) tbody tr:has-text('{name}')"
    await p.wait_for_selector(f"{row}:has-text('MLIFE_MSM: ')")
    assert "MLIFE_MTT: " in str(await p.text_content(row))
    assert await p.query_selector(f"{row} td:text-is('<b>acme</b> dashboard')") is not None  # shown as text
    assert await p.query_selector(f"{row} b") is None

    await p.click(f"{row} button:text('Details')")
    detail = f"section[data-subscriber='{name}']"
    await p.wait_for_selector(f"{detail} tr:has(code:text-is('sub-{name}-MLIFE_MSM')):has-text('model.registered')")
    assert "function=digits" in str(await p.text_content(detail))
    await p.fill(f"{detail} input[name=since]", await p.evaluate(LOCAL_TEN_MINUTES_AGO))
    await p.click(f"{detail} button:text('Replay')")
    await p.wait_for_selector(f"{detail} h3:text('Replays') + table tbody tr:has-text('maintainer-user')")

    await p.click(f"{row} button:text('Rotate password')")
    await p.wait_for_selector(f"pre[aria-label='subscriber password']:not(:text-is('{password}'))")

    await p.click(f"{row} button:text('Delete')")
    await p.wait_for_selector(row, state="detached")
    async with client(stack, "maintainer") as c:
        assert name not in [s["name"] for s in (await c.get("/api/gateway/subscribers")).json()]
    assert page.console_errors() == []


async def test_an_engineer_is_sent_to_a_maintainer(page: Page, stack: Stack) -> None:
    p = await open_as(page, stack, "engineer", "#/subscribers")
    await p.wait_for_selector("main p:text('Outside subscribers are managed by maintainers.')")
    assert await p.query_selector("form[aria-label='Create a subscriber']") is None
    assert page.console_errors() == []
