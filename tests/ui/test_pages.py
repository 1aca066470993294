"""The pages for what the API could do and the UI could not show: dead letters, webhooks, dataset statistics and
leakage, document exports, model compression and Docker build contexts. Each test drives its page in Chromium
against the real platform (every service as a process); data is seeded through the services' APIs or, for a
dead letter, by a malformed event on the bus, as a faulty producer would send it."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import Stack
from tests.support.ui import (
    Page,
    client,
    create_task,
    eventually,
    group,
    login,
    open_as,
    register_model,
    require,
    table_document,
)


async def download(p: Any, selector: str, tmp_path: Path) -> bytes:
    """Click a download link the way a person does and read the file the browser saved."""
    async with p.expect_download() as info:
        await p.click(selector)
    d = await info.value
    target = tmp_path / d.suggested_filename
    await d.save_as(str(target))
    return target.read_bytes()


async def malformed_dead_letter(stack: Stack) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """A body that is no event envelope on `serving.feedback` (MSM's event; BAM consumes it): BAM dead-letters
    it. Returns its marker, BAM's dead letters and that one."""
    import nats

    marker = uuid.uuid4().hex
    nc = await nats.connect(stack.nats.url)  # type: ignore[attr-defined]
    try:
        # `serving.feedback` is MSM's event; BAM consumes it. A body that is no event envelope is dead-lettered.
        await nc.jetstream().publish("serving.feedback", f"not an event {marker}".encode(),
                                     headers={"Nats-Msg-Id": marker})
    finally:
        await nc.close()
    async with client(stack, "viewer") as c:

        async def _dead_lettered() -> list[dict[str, Any]] | None:
            letters = (await c.get("/api/bam/dead-letters")).json()
            return letters if any(marker in (d["payload"] or "") for d in letters) else None

        letters = await eventually(_dead_lettered, "BAM dead-letters the malformed event")
    return marker, letters, next(d for d in letters if marker in (d["payload"] or ""))


async def test_dead_letters_page_shows_a_malformed_event(page: Page, stack: Stack) -> None:
    marker, letters, mine = await malformed_dead_letter(stack)
    await login(page, stack, "viewer")
    p = page.page
    await p.click("nav a[href='#/dead-letters']")
    await p.wait_for_selector("main h1:text('Dead letters')")
    bam = "section[data-service=bam]"
    await p.wait_for_selector(f"{bam} tbody tr")
    assert (await p.text_content(f"{bam} h2")).startswith(f"BAM: {len(letters)} dead-lettered")
    row = f"{bam} tbody tr:has-text('{mine['consumer']}')"
    assert "serving.feedback" in await p.text_content(row)
    assert await p.query_selector(f"[data-redrive='{mine['id']}']") is None  # re-drive is for maintainers
    await p.click(f"{row} summary")
    assert marker in await p.text_content(f"{row} pre")
    for service in ("dam", "mtt", "msm"):
        assert await p.query_selector(f"section[data-service={service}] h2") is not None
    # filtering by consumer keeps the page (and the URL says so)
    await p.fill("form[aria-label='Filter dead letters'] input[name=consumer]", "no-such-consumer")
    await p.click("form[aria-label='Filter dead letters'] button")
    await p.wait_for_selector(f"{bam} h2:text('BAM: 0 dead-lettered')")
    assert "consumer=no-such-consumer" in p.url
    # the way to follow these events from outside: the AsyncAPI document, served without a login
    href = await p.get_attribute("[data-testid=asyncapi-link]", "href")
    doc = await p.evaluate("async (u) => (await fetch(u, {credentials: 'omit'})).json()", href)
    assert doc["asyncapi"] == "3.0.0" and "serving_feedback" in doc["channels"]
    assert page.console_errors() == []


async def test_a_maintainer_redrives_dead_letters_from_the_page(page: Page, stack: Stack) -> None:
    """The Re-drive button and "Re-drive all pending of <consumer>" reach the service; a malformed event can never
    be applied: the reason is shown, the letter stays pending with its failed attempts counted. (A re-drive that
    applies a fixed event exactly once is tested on the API in tests/backbone/test_redrive.py.)"""
    _, _, mine = await malformed_dead_letter(stack)
    p = await open_as(page, stack, "maintainer", f"#/dead-letters?consumer={mine['consumer']}")
    button = f"[data-redrive='{mine['id']}']"
    await p.wait_for_selector(button)
    async with p.expect_response(lambda r: r.url.endswith(f"/dead-letters/redrive?id={mine['id']}")) as answer:
        await p.click(button)
    assert (await answer.value).status == 422
    await p.wait_for_selector("#toast div:has-text('can never be applied')")
    await p.wait_for_selector("section[data-service=bam] :text('last attempt failed (1)')")
    async with p.expect_response(lambda r: "/dead-letters/redrive?consumer=" in r.url) as answer:
        await p.click("[data-redrive-all=bam]")
    results = await (await answer.value).json()
    assert [r["outcome"] for r in results if r["id"] == mine["id"]] == ["failed"]
    await p.wait_for_selector("#toast div:has-text('failed')")
    async with client(stack, "viewer") as c:
        (letter,) = [d for d in (await c.get("/api/bam/dead-letters", params={"state": "pending"})).json()
                     if d["id"] == mine["id"]]
    assert letter["redrives"] == 2 and letter["redriven_at"] is None
    assert page.console_errors(expected_statuses=(422,)) == []


async def test_webhooks_page_refuses_an_unsafe_target_and_creates_nothing(page: Page, stack: Stack) -> None:
    """The stack's gateway allow-lists only the name `localhost` (for test_webhook_pages' receiver): a webhook to
    127.0.0.1 is refused with the reason and the setting that would allow it, a subject pattern that matches no
    public event is refused with the known subjects, and nothing is created."""
    await login(page, stack, "maintainer")
    p = page.page
    await p.click("nav a[href='#/webhooks']")
    form = "form[aria-label='Create a webhook']"
    await p.wait_for_selector(form)
    async with client(stack, "maintainer") as c:
        before = (await c.get("/api/gateway/webhooks")).json()
    await p.fill(f"{form} input[name=url]", "http://127.0.0.1:9/mlife-hook")
    await p.fill(f"{form} input[name=subjects]", "model.registered, deployment.*")
    await p.click(f"{form} button[type=submit]")
    error = await p.wait_for_selector("#toast div.error")
    text = await error.text_content() or ""
    assert "UnsafeUrl" in text and "MLIFE_GATEWAY_WEBHOOK_ALLOW_HOSTS" in text
    await p.fill(f"{form} input[name=url]", "http://localhost:9/mlife-hook")
    await p.fill(f"{form} input[name=subjects]", "no.such.event")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector("#toast div.error:has-text('matches no public event')")
    async with client(stack, "maintainer") as c:
        assert (await c.get("/api/gateway/webhooks")).json() == before, "a refused webhook is not created"
    rows = "section:has(h2:text('Webhooks')) tbody tr"
    assert len(await p.query_selector_all(rows)) == len(before)
    assert page.console_errors(expected_statuses=(422,)) == []


async def test_dataset_statistics_and_leakage(page: Page, stack: Stack) -> None:
    require(stack, "dam")
    marker = uuid.uuid4().hex[:6]
    doc = await table_document(stack, f"leak-doc-{marker}")
    first = await group(stack, f"leak-a-{marker}", doc["id"], seed=1)
    second = await group(stack, f"leak-b-{marker}", doc["id"], seed=2)
    async with client(stack, "viewer") as c:
        expected = (await c.get("/api/dam/datasets/leakage",
                                params={"train": first["train"]["id"], "test": second["test"]["id"]})).json()
        stats = (await c.get(f"/api/dam/datasets/{first['train']['id']}/stats")).json()
    assert expected["shared_count"] > 0, "two different splits of one document share rows"

    await login(page, stack, "viewer")
    p = page.page
    await p.click("nav a[href='#/data']")
    await p.click(f"main a[href='#/data/datasets/{first['train']['id']}']")
    await p.wait_for_selector(f"main h1:text('Dataset: leak-a-{marker} v1 (train)')")
    totals = await p.inner_text("dl[aria-label=totals]")
    assert f"row count\n{stats['row_count']}" in totals, totals
    features = await p.inner_text("section:has(h2:text('Features')) tbody")
    assert features.startswith("f0") and "f1" in features
    await p.wait_for_selector("section:has(h2:text('Distribution by class')) canvas")
    assert await p.get_attribute("section:has(h2:text('Distribution by class')) canvas", "data-points") == "2"
    assert await p.get_attribute("[data-leakage]", "data-leakage") == "0"
    manifest = await p.get_attribute("a:text('Download the manifest (JSON lines)')", "href")
    async with client(stack, "viewer") as c:
        assert len((await c.get(manifest)).text.splitlines()) == first["train"]["item_count"]

    await p.click("main a:text('← Data')")
    form = "form[aria-label='Check leakage']"
    await p.wait_for_selector(form)
    await p.select_option(f"{form} select[name=train]", first["train"]["id"])
    await p.select_option(f"{form} select[name=test]", second["test"]["id"])
    await p.click(f"{form} button")
    shared = await p.wait_for_selector("[data-shared]")
    assert await shared.get_attribute("data-shared") == str(expected["shared_count"])
    assert f"{expected['shared_count']} item(s) are in both datasets" in await shared.inner_text()
    await p.select_option(f"{form} select[name=test]", first["test"]["id"])
    await p.click(f"{form} button")
    await p.wait_for_selector("[data-shared='0']:text('No leakage')")
    assert page.console_errors() == []


async def test_document_exports_download(page: Page, stack: Stack, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:6]
    doc = await table_document(stack, f"export-doc-{marker}")
    p = await open_as(page, stack, "viewer", f"#/data/documents/{doc['id']}")
    await p.wait_for_selector("p[aria-label='export links'] a")
    async with httpx.AsyncClient(base_url=stack.url) as c:
        spec = (await c.get("/openapi.json")).json()
    param = next(x for x in spec["paths"]["/api/dam/documents/{document_id}/export"]["get"]["parameters"]
                 if x["name"] == "format")
    formats = await p.eval_on_selector_all("p[aria-label='export links'] a", "as => as.map(a => a.dataset.format)")
    assert formats == param["schema"]["enum"], "one link per format the server offers"

    rows = list(csv.DictReader(io.StringIO((await download(p, "a[data-format=csv]", tmp_path)).decode())))
    assert len(rows) == 12 and {"f0", "f1"} <= set(rows[0]) and {r["label"] for r in rows} == {"cat", "dog"}
    tsv = (await download(p, "a[data-format=tsv]", tmp_path)).decode().splitlines()
    assert len(tsv) == 13 and "\t" in tsv[0]
    exported = json.loads(await download(p, "a[data-format=json]", tmp_path))
    items = exported if isinstance(exported, list) else exported.get("rows") or exported.get("items")
    assert len(items) == 12
    assert page.console_errors() == []


async def test_compress_a_version_and_download_its_docker_context(page: Page, stack: Stack, tmp_path: Path) -> None:
    name = f"ui-compress-{uuid.uuid4().hex[:6]}"
    v1 = await register_model(stack, name)
    p = await open_as(page, stack, "maintainer", f"#/models/{name}")
    form = "form[aria-label='Compress a version']"
    await p.wait_for_selector(form)
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector("#toast div:text('Compressed into v2')")
    await p.wait_for_selector("main table tbody tr:has(a[data-version='2'])")
    async with client(stack, "viewer") as c:
        versions = (await c.get(f"/api/msm/models/{name}")).json()["versions"]
    v2 = next(v for v in versions if v["version"] == "2")
    assert v2["source"] == "compression" and v2["parent_version_id"] == v1["id"]
    assert "v1" in await p.text_content("main table tbody tr:has(a[data-version='2'])"), "its parent is shown"

    context = await download(p, "a[data-version='1']", tmp_path)
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        names = tar.getnames()
    assert any(n.endswith("Dockerfile") for n in names) and any(n.endswith(".onnx") for n in names), names

    build = "form[aria-label='Build a Docker image']"
    await p.fill(f"{build} input[name=tag]", f"{name}:ui")
    await p.click(f"{build} button[type=submit]")
    refused = await p.wait_for_selector("section:has(h2:text('Version actions')) p.error[role=alert]")
    assert "no Docker engine is configured" in await refused.text_content()
    assert page.console_errors(expected_statuses=(422,)) == []


async def test_predict_with_a_live_deployment_and_flag_it_wrong(page: Page, stack: Stack) -> None:
    name = f"ui-serve-{uuid.uuid4().hex[:6]}"
    version = await register_model(stack, name, function=f"fn-{name}")
    async with client(stack, "maintainer") as c:
        r = await c.post("/api/msm/deployments", json={"name": name, "target": "local", "override_reason": "serving page test",
                                                       "versions": [{"model_version_id": version["id"]}]})
        assert r.status_code in (201, 202), r.text
        deployment = r.json()["id"]

        async def _live() -> bool:
            return bool((await c.get(f"/api/msm/deployments/{deployment}")).json()["status"] == "live")

        await eventually(_live, "the deployment goes live", tries=120)

    p = await open_as(page, stack, "tester", f"#/deployments/{deployment}")
    form = "form[aria-label='Predict']"
    await p.wait_for_selector(form)
    assert json.loads(await p.input_value(f"{form} textarea")) == {"x": [0, 0, 0, 0]}, "prefilled in the model's shape"
    await p.fill(f"{form} textarea", json.dumps({"x": [0.1, 0.9, 0.0, 0.0]}))
    await p.click(f"{form} button[type=submit]")
    served = await p.wait_for_selector("[data-prediction]")
    assert f"Served by {name} v1" in await served.text_content()
    outputs = await p.text_content("pre[aria-label=outputs]")
    assert outputs.startswith("probs: [")
    stats = "section:has(h2:text('Serving')) table tbody"
    await p.wait_for_selector(f"{stats} tr:has-text('{name}:1')")
    await p.fill("form[aria-label='Flag as wrong'] input[name=correct_label]", "2")
    await p.click("form[aria-label='Flag as wrong'] button")
    await p.wait_for_selector("[data-feedback]")
    async with client(stack, "viewer") as c:

        async def _filed() -> list[dict[str, Any]]:  # serving.feedback → BAM files the badcase
            return list((await c.get("/api/bam/badcases", params={"deployment_id": deployment})).json()["items"])

        found = await eventually(_filed, "BAM files the flagged prediction", tries=120)
    assert len(found) == 1 and found[0]["source"] == "serving" and found[0]["ground_truth"] == 2, found
    assert page.console_errors() == []


async def test_import_badcases_from_a_csv(page: Page, stack: Stack, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:6]
    f = tmp_path / "badcases.csv"
    f.write_text("function,prediction,ground_truth,tags\n"
                 f"import-{marker},happy,sad,ui;csv\n"
                 f"import-{marker},sad,angry,ui\n"
                 ",nothing,here,\n")
    p = await open_as(page, stack, "tester", "#/badcases")
    form = "form[aria-label='Import badcases']"
    await p.wait_for_selector(form)
    await p.set_input_files(f"{form} input[name=file]", str(f))
    # Wait for the import's own answer (on a busy machine BAM may take longer than Playwright's default 30 s
    # to dedupe and record), then for the page to show it.
    async with p.expect_response(lambda r: "/api/bam/badcases/import" in r.url and r.request.method == "POST",
                                 timeout=180_000) as answer:
        await p.click(f"{form} button[type=submit]")
    assert (await answer.value).status == 200, await (await answer.value).text()
    summary = await p.wait_for_selector("[data-imported]")
    assert await summary.text_content() == "3 row(s): 2 new, 0 merged, 1 failed"
    errors = await p.inner_text("section:has(h2:text('Import badcases')) table tbody")
    assert errors.startswith("3\t") and "function" in errors, errors
    async with client(stack, "viewer") as c:
        found = (await c.get("/api/bam/badcases", params={"function": f"import-{marker}"})).json()["items"]
    assert sorted(b["ground_truth"] for b in found) == ["angry", "sad"]
    # the list, filtered to the import's function (in a full run the shared stack holds hundreds of badcases, so
    # the new ones need not be on the unfiltered first page)
    await p.goto(f"{stack.url}/#/badcases?function=import-{marker}")
    await p.wait_for_function(f"() => [...document.querySelectorAll('main table tbody tr')]"
                              f".filter(r => r.textContent.includes('import-{marker}')).length === 2")
    assert page.console_errors() == []


async def test_cancel_a_task(page: Page, stack: Stack) -> None:
    marker = uuid.uuid4().hex[:6]
    doc = await table_document(stack, f"cancel-doc-{marker}")
    datasets = await group(stack, f"cancel-{marker}", doc["id"], seed=0)
    task = await create_task(stack, f"cancel-{marker}", datasets["test"]["id"])
    assert task["status"] == "draft"
    p = await open_as(page, stack, "engineer", f"#/tasks/{task['id']}")
    await p.wait_for_selector(f"main h1:text('Task: cancel-{marker}')")
    await p.click("main button:text('Cancel')")
    await p.wait_for_selector("#toast div:text('Task cancelled')")
    await p.wait_for_selector("dl.kv dd:text-is('cancelled')")
    assert await p.query_selector("main button:text('Cancel')") is None, "a cancelled task has nothing to cancel"
    async with client(stack, "viewer") as c:
        assert (await c.get(f"/api/mtt/tasks/{task['id']}")).json()["status"] == "cancelled"
    assert page.console_errors() == []


async def test_annotate_a_version_with_its_test_split(page: Page, stack: Stack) -> None:
    marker = uuid.uuid4().hex[:6]
    doc = await table_document(stack, f"split-doc-{marker}")
    datasets = await group(stack, f"split-{marker}", doc["id"], seed=0)
    name = f"ui-annotate-{marker}"
    version = await register_model(stack, name)
    p = await open_as(page, stack, "engineer", f"#/models/{name}")
    form = "form[aria-label='Annotate a version']"
    await p.wait_for_selector(form)
    await p.fill(f"{form} input[name=description]", "trained on the spring data")
    await p.fill(f"{form} input[name=tags]", "spring, ui")
    await p.select_option(f"{form} select[name=test_dataset_ids]", [datasets["test"]["id"]])
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector("#toast div:text('Version saved')")
    async with client(stack, "viewer") as c:
        saved = (await c.get(f"/api/msm/model-versions/{version['id']}")).json()
    assert saved["description"] == "trained on the spring data" and saved["tags"] == ["spring", "ui"]
    assert saved["test_dataset_ids"] == [datasets["test"]["id"]]
    # the page shows it back (re-rendered from the server)
    await p.wait_for_function(f"() => document.querySelector(\"{form} input[name=description]\")?.value"
                              " === 'trained on the spring data'")  # (absent for a moment while it re-renders)
    assert await p.eval_on_selector(f"{form} select[name=test_dataset_ids]",
                                    "s => [...s.selectedOptions].map(o => o.value)") == [datasets["test"]["id"]]
    assert page.console_errors() == []
