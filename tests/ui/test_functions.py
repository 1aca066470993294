"""The function as the unit of the loop, in the browser (docs/functions.md): a badcase links to the task that
found it and the deployment that served it (and both link back to their badcases), a deployment waiting for
test results shows its progress, a model's function is shown and edited. Data is seeded through the
services' APIs, as a client would."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.stack import Stack
from tests.support.ui import (
    Page,
    client,
    eventually,
    fill_deployment_request,
    group,
    no_null_text,
    open_as,
    open_new_model,
    register_model,
    require,
    table_document,
)


async def table_dataset(stack: Stack, name: str, function: str) -> dict[str, Any]:
    """A plain table document (features and a label, no files) grouped into train/test datasets of `function`."""
    rows = "f0,f1,f2,f3,label\n" + "".join(f"{i % 4},{(i * 3) % 5},{i % 2},{i},{i % 2}\n" for i in range(12))
    doc = await table_document(stack, name, rows)
    assert doc["kind"] == "table", doc
    return {"document": doc, **await group(stack, name, doc["id"], function=function)}


async def test_badcase_detail_links_to_its_task_and_deployment(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam", "mtt", "msm")
    marker = uuid.uuid4().hex[:6]
    function, name = f"wine-{marker}", f"wine-model-{marker}"
    version = await register_model(stack, name, function=function)
    data = await table_dataset(stack, f"wine-{marker}", function)
    async with client(stack, "engineer") as c:
        # a training task on the table (a draft: no code)
        r = await c.post("/api/mtt/tasks", json={
            "kind": "train", "name": f"train wine {marker}", "function": function, "command": "python train.py",
            "datasets": [{"dataset_id": data["train"]["id"], "manifest_key": data["train"]["manifest_key"],
                          "purpose": "train"}]})
        assert r.status_code == 201, r.text
        task = r.json()
        # a deployment of the model (blocked: nothing to test it on; it is kept, with its id)
        r = await c.post("/api/msm/deployments", json={"name": f"wine-{marker}",
                                                       "versions": [{"model_version_id": version["id"]}]})
        assert r.status_code == 409, r.text
        deployment_id = r.json()["detail"]["deployment_id"]
    async with client(stack, "tester") as c:
        r = await c.post("/api/bam/badcases", json={
            "function": function, "model_name": name, "model_version": version["version"],
            "model_version_id": version["id"], "task_id": task["id"], "deployment_id": deployment_id,
            "features": {"f0": 1, "f1": 2.5, "f2": 0, "f3": 7}, "prediction": "0", "ground_truth": "1",
            "description": f"tabular badcase {marker}"})
        assert r.status_code == 201, r.text
        badcase = r.json()
        assert badcase["task_id"] == task["id"] and badcase["deployment_id"] == deployment_id

    p = await open_as(page, stack, "viewer", f"#/badcases/{badcase['id']}")
    await p.wait_for_selector(f"h1:text('Badcase: {function}')")
    details = "section:has(h2:text('Details'))"
    assert function in await p.text_content(details)
    assert await p.text_content("table[aria-label=features] thead") == "f0f1f2f3"
    assert await p.text_content("table[aria-label=features] tbody") == "12.507"
    await no_null_text(p)

    # badcase → its task → the task's badcases
    await p.click(f"{details} [data-field=task_id] a[href='#/tasks/{task['id']}']")
    await p.wait_for_selector(f"h1:text('Task: train wine {marker}')")
    await p.click("main a:text('Badcases of this task')")
    await p.wait_for_selector(f"[aria-label='Filters from links'] a[href='#/tasks/{task['id']}']")
    await p.wait_for_function(f"""() => {{ const rows = [...document.querySelectorAll('main table tbody tr')];
        return rows.length === 1 && rows[0].textContent.includes('tabular badcase {marker}'); }}""")
    await p.click(f"main table tbody tr a[href='#/badcases/{badcase['id']}']")

    # badcase → its deployment → the deployment's badcases
    await p.wait_for_selector(f"h1:text('Badcase: {function}')")
    await p.click(f"{details} [data-field=deployment_id] a[href='#/deployments/{deployment_id}']")
    await p.wait_for_selector(f"h1:text('Deployment: wine-{marker}')")
    assert function in await p.text_content("section:has(h2:text('Status'))")
    await no_null_text(p)
    await p.click("main a:text('Badcases of this deployment')")
    await p.wait_for_selector(f"[aria-label='Filters from links'] a[href='#/deployments/{deployment_id}']")
    await p.wait_for_function(f"""() => {{ const rows = [...document.querySelectorAll('main table tbody tr')];
        return rows.length === 1 && rows[0].textContent.includes('tabular badcase {marker}'); }}""")

    # clearing the link's filter lists the other badcases again
    await p.click("[aria-label='Filters from links'] button")
    await p.wait_for_selector("[aria-label='Filters from links']", state="hidden")
    assert page.console_errors() == []


async def badcase_test_set(stack: Stack, function: str, marker: str) -> str:
    """The function's badcase test set, made as the loop makes it: a tabular badcase added to test data (BAM →
    DAM appends it to `badcase test set: <function>` and freezes a dataset → MSM learns it is current)."""
    async with client(stack, "tester") as c:
        r = await c.post("/api/bam/badcases", json={
            "function": function, "features": {"f0": 0, "f1": 1, "f2": 0, "f3": 0}, "prediction": "0",
            "ground_truth": "1", "description": f"for the test set {marker}"})
        assert r.status_code == 201, r.text
        r = await c.post("/api/bam/badcases/add-to-test-data", json={"ids": [r.json()["id"]]})
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
    async with client(stack, "viewer") as c:

        async def _frozen() -> str | None:
            r = await c.get("/api/dam/datasets", params={"function": function, "is_badcase_test_set": "true"})
            return str(r.json()[0]["id"]) if r.status_code == 200 and r.json() else None

        return await eventually(_frozen, f"DAM freezes a badcase test set of {function}")


async def test_deployment_awaiting_tests_shows_its_progress(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam", "mtt", "msm")
    marker = uuid.uuid4().hex[:6]
    function, name = f"shapes-{marker}", f"shapes-model-{marker}"
    version = await register_model(stack, name, function=function)
    await badcase_test_set(stack, function, marker)
    async with client(stack, "viewer") as c:  # MSM knows the set once its gate would wait for a result on it

        async def _waiting() -> bool:
            gate = (await c.get(f"/api/msm/model-versions/{version['id']}/gate")).json()
            return any(r.startswith("waiting for") and "badcase test set" in r for r in gate.get("reasons", []))

        await eventually(_waiting, f"MSM learns the badcase test set of {function}")

    p = await open_as(page, stack, "engineer", "#/deployments")
    endpoint = f"shapes-{marker}"
    form = await fill_deployment_request(p, endpoint, version["id"])
    option = await p.eval_on_selector(f"{form} select[name=version]", "s => s.selectedOptions[0].textContent")
    assert f"({function})" in option, "the version's model names its function"
    # a threshold on the badcase test set, through the set selector
    await p.click(f"{form} button:text('Add a threshold')")
    await p.select_option(f"{form} .threshold select[name=t_set]", "badcase_test_set")
    await p.fill(f"{form} .threshold input[name=t_metric]", "accuracy")
    await p.fill(f"{form} .threshold input[name=t_min]", "0.5")
    await p.click(f"{form} button[type=submit]")

    # MSM answers 202 awaiting_tests: the page shows what the gate waits for
    section = "section:has(h2:text('Request a deployment'))"
    await p.wait_for_selector(f"{section} p.okc:text('is waiting for test results')")
    evidence = f"{section} .evidence table tbody tr"
    rows = await p.eval_on_selector_all(evidence, "rs => rs.map(r => r.textContent)")
    assert rows and any("badcase test set" in r and "pending" in r for r in rows), rows
    assert "accuracy on the badcase test set ≥ 0.5" in await p.text_content(section)
    async with client(stack, "viewer") as c:
        items = (await c.get("/api/msm/deployments", params={"name": endpoint})).json()
        mine = next(d for d in items if d["name"] == endpoint)
    assert mine["thresholds"] == {"badcase_test_set.accuracy": {"min": 0.5}}

    # the deployment page shows each evidence item with its state and reason, and follows it until the gate decides
    await p.click(f"{section} a:text('Open it')")
    await p.wait_for_selector(f"h1:text('Deployment: {endpoint}')")
    states = await p.eval_on_selector_all("main .evidence table tbody tr td:nth-child(4)", "cs => cs.map(c => c.textContent)")
    assert states and all(s in ("pending", "done", "failed") for s in states), states
    await no_null_text(p)
    await p.wait_for_selector("main [data-status]:not([data-status=awaiting_tests])", timeout=300_000)
    decided = await p.eval_on_selector_all("main .evidence table tbody tr", "rs => rs.map(r => r.textContent)")
    assert decided and not any("pending" in r for r in decided), decided
    status = await p.get_attribute("main [data-status]", "data-status")
    assert status in ("requested", "blocked", "live", "failed"), status
    await no_null_text(p)
    assert page.console_errors() == []


async def test_model_function_is_shown_and_edited(page: Page, stack: Stack) -> None:
    require(stack, "msm")
    marker = uuid.uuid4().hex[:6]
    name = f"faces-{marker}"
    await register_model(stack, name)
    p = await open_as(page, stack, "engineer", "#/models")
    await p.wait_for_selector(f"main a:text('{name}')")
    assert "not set (needed to deploy)" in await p.text_content(f"main tr:has(a:text('{name}'))")
    await p.click(f"main a:text('{name}')")
    await p.wait_for_selector(f"h1:text('Model: {name}')")
    assert "a function is needed before deploying" in await p.text_content("[data-field=function]")
    await no_null_text(p)
    form = "form[aria-label='Set the function']"
    await p.fill(f"{form} input[name=function]", f"expressions-{marker}")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector(f"[data-field=function]:has-text('expressions-{marker}')")
    assert "needed before deploying" not in await p.text_content("[data-field=function]")
    async with client(stack, "viewer") as c:
        assert (await c.get(f"/api/msm/models/{name}")).json()["function"] == f"expressions-{marker}"
    # changed again: the form edits what is there
    assert await p.input_value(f"{form} input[name=function]") == f"expressions-{marker}"
    await p.fill(f"{form} input[name=function]", f"faces-{marker}")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector(f"[data-field=function]:has-text('faces-{marker}')")
    await p.click("[data-field=function] a:text('its badcases')")
    await p.wait_for_selector("form[aria-label='Filter badcases']")
    assert await p.input_value("form[aria-label='Filter badcases'] input[name=function]") == f"faces-{marker}"
    assert page.console_errors() == []


async def test_a_viewer_cannot_edit_a_model_function(page: Page, stack: Stack) -> None:
    p, name = await open_new_model(page, stack, "viewer", "viewer")
    await p.wait_for_selector(f"[data-field=function]:has-text('fn-{name}')")
    assert await p.query_selector("form[aria-label='Set the function']") is None
    await no_null_text(p)
    assert page.console_errors() == []


async def test_table_document_features_and_group_items_leakage(page: Page, stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    require(stack, "bam", "dam")
    marker = uuid.uuid4().hex[:6]
    function = f"iris-{marker}"
    await badcase_test_set(stack, function, marker)  # its one row: f0=0, f1=1, f2=0, f3=0
    p = await open_as(page, stack, "engineer", "#/data")
    # the function's badcase test set is a document of that function; its tabular row shows its features
    await p.wait_for_selector(f"main a:text('badcase test set: {function}')")
    assert function in await p.text_content(f"main tr:has(a:text('badcase test set: {function}'))")
    await p.click(f"main a:text('badcase test set: {function}')")
    await p.wait_for_selector(f"h1:text('Document: badcase test set: {function}')")
    heads = await p.eval_on_selector_all("section:has(h2:text('Rows')) thead th", "ths => ths.map(t => t.textContent)")
    assert {"f0", "f1", "f2", "f3"} <= set(heads), heads
    await no_null_text(p)

    # a plain table (no file column) that shares that row, imported and grouped for the function: the leakage shows
    csv = tmp_path / f"iris-{marker}.csv"
    csv.write_text("f0,f1,f2,f3,label\n0,1,0,0,1\n" + "".join(f"{i},{i + 1},{i % 3},{i * 2},{i % 2}\n" for i in range(2, 8)))
    await p.click("nav a[href='#/data']")
    form = "form[aria-label='Import a document']"
    await p.wait_for_selector(form)
    await p.fill(f"{form} input[name=name]", f"iris-{marker}")
    await p.set_input_files(f"{form} input[name=file]", str(csv))
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector(f"main a:text-is('iris-{marker}')")
    await p.click(f"main a:text-is('iris-{marker}')")
    await p.wait_for_selector(f"h1:text('Document: iris-{marker}')")
    assert "table" in await p.text_content("section:has(h2:text-is('Document'))")
    await p.wait_for_function("() => document.querySelectorAll('main section table tbody tr').length >= 7")
    heads = await p.eval_on_selector_all("section:has(h2:text('Rows')) thead th", "ths => ths.map(t => t.textContent)")
    assert {"f0", "f1", "f2", "f3"} <= set(heads) and "MD5" not in heads, heads
    await no_null_text(p)

    await p.click("nav a[href='#/data']")
    group = "form[aria-label='Group items']"
    await p.wait_for_selector(group)
    await p.fill(f"{group} input[name=name]", f"iris-{marker}")
    await p.fill(f"{group} input[name=function]", function)
    await p.fill(f"{group} input[name=train]", "1")
    await p.check(f"{group} label:has-text('iris-{marker}') input")
    await p.click(f"{group} button[type=submit]")
    section = "section:has(h2:text('Group items'))"
    await p.wait_for_selector(f"{section} p.okc:text('Grouped')")
    warning = await p.wait_for_selector(f"{section} [aria-label=leakage]")
    text = await warning.text_content()
    assert "1 train item(s) are also in the badcase test set" in text and function in text, text
    await p.wait_for_selector(f"main tr:has-text('iris-{marker}'):has-text('{function}')")
    assert page.console_errors() == []


async def test_a_maintainer_sets_the_default_thresholds_of_a_function(page: Page, stack: Stack) -> None:
    p, name = await open_new_model(page, stack, "maintainer", "digits")
    form = "form[aria-label='Default thresholds']"
    await p.wait_for_selector(form)
    await p.click(f"{form} button:text('Add a threshold')")
    await p.fill(f"{form} .threshold:nth-child(1) input[name=t_min]", "0.95")  # test split accuracy by default
    await p.click(f"{form} button:text('Add a threshold')")
    await p.select_option(f"{form} .threshold:nth-child(2) select[name=t_set]", "badcase_test_set")
    await p.fill(f"{form} .threshold:nth-child(2) input[name=t_min]", "0.5")
    await p.click(f"{form} button[type=submit]")
    section = f"section:has(h2:text('Default gate thresholds of function fn-{name}'))"
    await p.wait_for_selector(f"{section} p:text('accuracy on the badcase test set ≥ 0.5')")
    assert "accuracy on the test split ≥ 0.95" in await p.text_content(section)
    async with client(stack, "viewer") as c:
        saved = (await c.get(f"/api/msm/functions/fn-{name}/thresholds")).json()["thresholds"]
    assert saved == {"test_split.accuracy": {"min": 0.95}, "badcase_test_set.accuracy": {"min": 0.5}}
    assert page.console_errors() == []
