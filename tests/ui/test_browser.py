"""The web UI in Chromium against the real platform: log in (keyboard only), file and find a badcase,
filter, charts drawn, triage, upload data, request a deployment; user text stays text; the console
stays free of errors."""

from __future__ import annotations

import re
import uuid

import httpx
import numpy as np
from PIL import Image

from tests.support.stack import Stack
from tests.support.ui import Page, chart_points, fill_deployment_request, login, png, register_model, require


async def test_login_dashboard_and_logout(page: Page, stack: Stack) -> None:
    await login(page, stack, "viewer")
    p = page.page
    assert await p.text_content("#who") == "viewer-user (viewer)"
    points = await chart_points(p, "main")
    assert points and points[0] == 4 * 12, "the burn-down has 4 series over 12 weeks"
    body = await p.text_content("main")
    # (a count, not 0: the stack is shared, and a dead-letter test of the suite may have run first)
    assert "Dead-lettered events" in body and re.search(r"bam: \d+ dead-lettered", body), body
    for service in ("dam", "mtt", "msm"):
        if service not in stack.up:
            assert f"{service}: service not available" in body
    cookie = next(c for c in await p.context.cookies() if c["name"] == "mlife_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    await p.click("#logout")
    await p.wait_for_selector("form[aria-label='Log in']")
    assert page.console_errors() == []


async def test_wrong_password_is_shown_not_thrown(page: Page, stack: Stack) -> None:
    p = page.page
    await p.goto(stack.url + "/")
    await p.fill("input[name=username]", "viewer-user")
    await p.fill("input[name=password]", "not the password")
    await p.click("button[type=submit]")
    await p.wait_for_selector("p[role=alert]:text('InvalidCredentials')")
    # a failed login's 401 is the browser's own network log line, not a page error
    assert [e for e in page.console_errors() if "401" not in e] == []


async def test_file_find_filter_triage_a_badcase(page: Page, stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await login(page, stack, "tester")
    p = page.page
    marker = uuid.uuid4().hex[:8]
    image = tmp_path / "cat.png"
    image.write_bytes(png((200, 30, 30)))
    await p.click("nav a[href='#/badcases']")
    form = "form[aria-label='Report a badcase']"
    await p.wait_for_selector(form)
    await p.fill(f"{form} input[name=function]", f"emotion-{marker}")
    await p.fill(f"{form} input[name=prediction]", "happy")
    await p.fill(f"{form} input[name=ground_truth]", "sad")
    await p.fill(f"{form} input[name=tags]", "ui, browser")
    await p.fill(f"{form} textarea[name=description]", f"filed from the browser {marker} <img src=x onerror=alert(1)>")
    await p.set_input_files(f"{form} input[name=file]", str(image))
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector(f"{form} p[role=status] a")
    # a second report without data, to have something to filter out
    await p.fill(f"{form} input[name=function]", f"other-{marker}")
    await p.fill(f"{form} textarea[name=description]", f"another one {marker}")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_function("() => document.querySelectorAll('main table tbody tr').length >= 2")

    search = "form[aria-label='Filter badcases']"
    await p.fill(f"{search} input[name=function]", f"emotion-{marker}")
    await p.click(f"{search} button[type=submit]")
    await p.wait_for_function(f"""() => {{ const rows = [...document.querySelectorAll('main table tbody tr')];
        return rows.length === 1 && rows[0].textContent.includes('emotion-{marker}'); }}""")
    row = "main table tbody tr"
    assert "<img src=x onerror=alert(1)>" in await p.text_content(row), "user text is shown as text"
    assert await p.eval_on_selector_all(f"{row} img", "imgs => imgs.filter(i => i.getAttribute('src') === 'x').length") == 0
    await p.wait_for_function("() => { const i = document.querySelector('main table tbody tr img.thumb'); "
                              "return i && i.complete && i.naturalWidth > 0; }")
    await p.fill(f"{search} input[name=function]", "")
    await p.fill(f"{search} input[name=q]", marker)
    await p.click(f"{search} button[type=submit]")
    await p.wait_for_function("() => document.querySelectorAll('main table tbody tr').length === 2")

    await p.check(f"{row}:has-text('emotion-{marker}') input[type=checkbox]")
    await p.wait_for_selector("text=By function — selected (1)")
    assert all(n > 0 for n in await chart_points(p, "main .grid"))
    await p.select_option("select[name=group_by]", "status")
    await p.click("button:text('Draw')")
    await p.wait_for_function("() => [...document.querySelectorAll('main section canvas')].some("
                              "c => c.closest('section').querySelector('h2').textContent.startsWith('Grouped') "
                              "&& Number(c.dataset.points) >= 1)")

    await p.click(f"{row}:has-text('emotion-{marker}') a")
    await p.wait_for_selector("h1:text('Badcase: emotion-')")
    await p.wait_for_function("() => { const i = document.querySelector('img.preview'); return i && i.naturalWidth > 0; }")
    triage = "form[aria-label='Triage']"
    await p.select_option(f"{triage} select[name=status]", "triaged")
    await p.fill(f"{triage} input[name=owner]", "tess")
    await p.click(f"{triage} button[type=submit]")
    await p.wait_for_selector("main table:has-text('owner')")
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("viewer")) as c:
        found = (await c.get("/api/bam/badcases", params={"function": f"emotion-{marker}"})).json()["items"]
    assert found[0]["status"] == "triaged" and found[0]["owner"] == "tess" and found[0]["tags"] == ["ui", "browser"]
    await p.click("button:text('Add to test data')")
    await p.wait_for_selector("#toast div:text('Added to test data')")
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("viewer")) as c:
        assert (await c.get(f"/api/bam/badcases/{found[0]['id']}")).json()["added_to_test_data_at"] is not None
    assert page.console_errors() == []


async def test_a_viewer_sees_no_write_forms(page: Page, stack: Stack) -> None:
    await login(page, stack, "viewer")
    p = page.page
    await p.click("nav a[href='#/badcases']")
    await p.wait_for_selector("form[aria-label='Filter badcases']")
    assert await p.query_selector("form[aria-label='Report a badcase']") is None
    await p.click("nav a[href='#/webhooks']")
    await p.wait_for_selector("main h1:text('Webhooks')")
    assert "managed by maintainers" in await p.inner_text("main")
    assert await p.query_selector("form[aria-label='Create a webhook']") is None
    assert page.console_errors() == []


async def test_upload_a_file_with_progress(page: Page, stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    require(stack, "dam")
    await login(page, stack, "tester")
    p = page.page
    await p.click("nav a[href='#/data']")
    f = tmp_path / f"sample-{uuid.uuid4().hex[:6]}.png"
    Image.fromarray(np.random.default_rng().integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(f)  # clean
    await p.wait_for_selector("input[name=files]")
    await p.set_input_files("input[name=files]", str(f))
    await p.click("button:text('Upload')")
    status = await p.wait_for_selector("li span.okc")
    assert "stored (" in (await status.text_content())
    assert await p.eval_on_selector("li progress", "e => e.value") == 100
    await p.set_input_files("input[name=files]", str(f))
    await p.click("button:text('Upload')")
    await p.wait_for_selector("li span.okc:text('already stored')")
    # a one-colour picture is stored and flagged by the cleaners, not refused
    blank = tmp_path / f"blank-{uuid.uuid4().hex[:6]}.png"
    blank.write_bytes(png((10, 120, 240), size=300))
    await p.set_input_files("input[name=files]", str(blank))
    await p.click("button:text('Upload')")
    flagged = await p.wait_for_selector("li span.warning:text('stored (')")
    assert "warning: blank" in str(await flagged.text_content())
    assert page.console_errors() == []


async def test_request_a_deployment_and_see_the_gate(page: Page, stack: Stack) -> None:
    require(stack, "msm")
    await login(page, stack, "maintainer")
    p = page.page
    await p.click("nav a[href='#/deployments']")
    name = f"ui-model-{uuid.uuid4().hex[:6]}"
    version = await register_model(stack, name, function=f"fn-{name}")  # a function of its own: nothing to test it on
    await p.reload()
    endpoint = f"ui-{uuid.uuid4().hex[:6]}"
    form = await fill_deployment_request(p, endpoint, version["id"])
    await p.click(f"{form} button[type=submit]")
    section = "section:has(h2:text('Request a deployment'))"
    # Nothing to test it on (no test split, no badcase test set of its function): MSM's gate blocks, and the page
    # says why.
    await p.wait_for_selector(f"{section} p.error:text('Blocked by the gate')")
    assert "nothing to be tested on" in await p.text_content(f"{section} ul[aria-label=reasons]")
    await p.fill(f"{section} form[aria-label='Override the gate'] input[name=reason]", "smoke test from the browser")
    await p.click(f"{section} form[aria-label='Override the gate'] button")
    await p.wait_for_selector(f"{section} p.okc:text('Overridden')")
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("viewer")) as c:
        deployments = (await c.get("/api/msm/deployments")).json()
    items = deployments if isinstance(deployments, list) else deployments["items"]
    mine = next(d for d in items if d["name"] == endpoint)
    assert mine["overridden"] and mine["override_by"] == "maintainer-user"
    await p.click(f"{section} a:text('Open it')")
    await p.wait_for_selector(f"h1:text('Deployment: {endpoint}')")
    assert page.console_errors(expected_statuses=(409,)) == []


async def test_documents_distributions_and_group_items(page: Page, stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    require(stack, "dam")
    await login(page, stack, "engineer")
    p = page.page
    await p.click("nav a[href='#/data']")
    from mlife.client import Client

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(png((40 * i, 100, 200 - 30 * i), size=32 + i))
    with Client(stack.url, stack.tokens["tester"]) as c:
        assert c.upload_dir(folder).failed == []
    from mlife.client import md5_of

    doc_csv = tmp_path / "faces.csv"
    doc_csv.write_text("md5,annotation,camera\n" + "".join(
        f"{md5_of(folder / f'{i}.png')},{['happy', 'sad', 'happy'][i % 3]},cam{i % 2}\n" for i in range(6)))
    name = f"faces-{uuid.uuid4().hex[:6]}"
    form = "form[aria-label='Import a document']"
    await p.wait_for_selector(form)
    await p.fill(f"{form} input[name=name]", name)
    await p.set_input_files(f"{form} input[name=file]", str(doc_csv))
    await p.click(f"{form} button[type=submit]")
    await p.click(f"main a:text('{name}')")
    await p.wait_for_selector(f"h1:text('Document: {name}')")
    await p.wait_for_function("() => document.querySelectorAll('main table tbody tr').length >= 6")
    await p.wait_for_function("() => [...document.querySelectorAll('img.thumb')].some(i => i.complete && i.naturalWidth > 0)")
    titles = await p.eval_on_selector_all("main .grid h2", "hs => hs.map(h => h.textContent)")
    assert "Distribution by class" in titles and "Distribution by column camera" in titles
    assert all(n > 0 for n in await chart_points(p, "main .grid"))
    await p.click("nav a[href='#/data']")
    group = "form[aria-label='Group items']"
    await p.wait_for_selector(group)
    await p.fill(f"{group} input[name=name]", f"set-{name}")
    await p.check(f"{group} label:has-text('{name}') input")
    await p.click(f"{group} button[type=submit]")
    await p.wait_for_selector("section:has(h2:text('Group items')) p.okc:text('Grouped')")
    assert page.console_errors() == []


async def test_every_page_renders_for_a_viewer_without_console_errors(page: Page, stack: Stack) -> None:
    await login(page, stack, "viewer")
    p = page.page
    for href, title in (("#/badcases", "Badcases"), ("#/data", "Data"), ("#/tasks", "Tasks"), ("#/models", "Models"),
                        ("#/deployments", "Deployments"), ("#/account", "Account"), ("#/dashboard", "Dashboard")):
        await p.click(f"nav a[href='{href}']")
        await p.wait_for_selector(f"main h1:text('{title}')")
        await p.wait_for_load_state("networkidle")
        assert await p.get_attribute(f"nav a[href='{href}']", "aria-current") == "page"
        body = await p.inner_text("main")  # what a viewer may not use is left out, not written as "null"
        assert not re.search(r"\bnull\b|\bundefined\b", body), f"{href}: {body[:2000]}"
    assert await p.query_selector("form[aria-label='Create a user']") is None, "users are for maintainers"
    assert page.console_errors() == []
