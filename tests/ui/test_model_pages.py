"""The model, deployment and task capabilities in the browser: register a version (an upload or a model already
stored), revert an alias, ask the gate about a version; request a deployment with user metrics, attach badcases and
record metric values; edit a task and upload its code, model, results and log (webhooks: test_webhook_pages).
Driven in Chromium against the real platform."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

from tests.support.stack import Stack
from tests.support.ui import (
    Page,
    client,
    create_task,
    eventually,
    fill_deployment_request,
    group,
    open_as,
    register_model,
    require,
    table_document,
)


async def test_register_import_revert_and_check_the_gate(page: Page, stack: Stack, tmp_path: Path) -> None:
    from tests.msm.onnx_models import identity_classifier

    require(stack, "msm")
    name = f"ui-registry-{uuid.uuid4().hex[:6]}"
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(identity_classifier(4))
    p = await open_as(page, stack, "engineer", "#/models")
    await p.wait_for_selector("section:has(h2:text('Production version per function'))")
    form = "form[aria-label='Register a model version']"
    await p.fill(f"{form} input[name=name]", name)
    await p.set_input_files(f"{form} input[name=file]", str(onnx))
    await p.fill(f"{form} input[name=tags]", "ui, upload")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector(f"main h1:text('Model: {name}')")
    async with client(stack, "engineer") as c:
        v1 = (await c.get(f"/api/msm/models/{name}")).json()["versions"][0]
        assert v1["tags"] == ["ui", "upload"]
        v2 = await register_model(stack, name, function=f"fn-{name}")
        for version in ("1", "2"):
            r = await c.post(f"/api/msm/models/{name}/aliases", json={"alias": "staging", "version": version})
            assert r.status_code in (200, 201), r.text

    await p.click("nav a[href='#/models']")
    imported = "form[aria-label='Import a model version']"
    await p.wait_for_selector(imported)
    await p.fill(f"{imported} input[name=name]", name)
    await p.fill(f"{imported} input[name=source_key]", v1["object_key"])
    await p.click(f"{imported} button[type=submit]")
    await p.wait_for_selector("#toast div:text('v3')")
    await p.wait_for_selector(f"main h1:text('Model: {name}')")

    await p.click("main button[aria-label='revert staging']")
    await p.wait_for_selector("#toast div:text('staging reverted')")
    async with client(stack, "viewer") as c:
        model = (await c.get(f"/api/msm/models/{name}")).json()
    assert {a["alias"]: a["version"] for a in model["aliases"]}["staging"] == "1", model["aliases"]
    assert any(v["version"] == "3" and v["md5"] == v1["md5"] for v in model["versions"])

    gate = "form[aria-label='Check the gate']"
    await p.select_option(f"{gate} select[name=version_id]", v2["id"])
    await p.click(f"{gate} button")
    verdict = await p.wait_for_selector("[data-gate]")
    # nothing to test it on (no test split, no badcase test set of its function): the gate would block
    assert await verdict.get_attribute("data-gate") == "blocked"
    assert "nothing to be tested on" in await p.text_content("section:has(h2:text('Gate check'))")
    assert page.console_errors() == []


async def test_request_with_user_metrics_attach_badcases_and_record_values(page: Page, stack: Stack) -> None:
    require(stack, "msm", "bam")
    name = f"ui-operate-{uuid.uuid4().hex[:6]}"
    version = await register_model(stack, name, function=f"fn-{name}")
    async with client(stack, "tester") as c:
        r = await c.post("/api/bam/badcases", json={"function": f"fn-{name}", "description": "attached by hand"})
        assert r.status_code == 201, r.text
        badcase = r.json()["id"]
    p = await open_as(page, stack, "maintainer", "#/deployments")
    form = await fill_deployment_request(p, name, version["id"])
    await p.fill(f"{form} input[name=override_reason]", "the operate page test")
    await p.fill(f"{form} input[name=metrics_schema]", "latency_ms:number, approved:boolean")
    await p.click(f"{form} button[type=submit]")
    await p.click("section:has(h2:text('Request a deployment')) a:text('Open it')")
    await p.wait_for_selector(f"main h1:text('Deployment: {name}')")

    attach = "form[aria-label='Attach badcases']"
    await p.fill(f"{attach} input[name=badcase_ids]", badcase)
    await p.fill(f"{attach} input[name=note]", "seen by support")
    await p.click(f"{attach} button")
    await p.wait_for_selector(f"section:has(h2:text('Attached badcases')) a[href='#/badcases/{badcase}']")

    metrics = "form[aria-label='Record metrics']"
    await p.fill(f"{metrics} input[name=latency_ms]", "12.5")
    await p.check(f"{metrics} input[name=approved]")
    await p.click(f"{metrics} button")
    recorded = await p.wait_for_selector("section:has(h2:text('Metrics')) td:has-text('latency_ms: 12.5')")
    assert "approved: yes" in await recorded.text_content()
    async with client(stack, "viewer") as c:
        deployment = (await c.get("/api/msm/deployments", params={"name": name})).json()[0]
    assert deployment["metrics_schema"] == {"latency_ms": "number", "approved": "boolean"}
    assert page.console_errors() == []


async def test_edit_a_task_and_upload_its_files(page: Page, stack: Stack, tmp_path: Path) -> None:
    from tests.msm.onnx_models import identity_classifier

    require(stack, "dam", "mtt")
    marker = uuid.uuid4().hex[:6]
    doc = await table_document(stack, f"uploads-doc-{marker}")
    datasets = await group(stack, f"uploads-{marker}", doc["id"], split={"train": 1})
    task = await create_task(stack, f"uploads-{marker}", datasets["train"]["id"], kind="train", command="python train.py")
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("train.py", "print('training')\n")
    files = {"code": code, "model": tmp_path / "model.onnx", "result": tmp_path / "metrics.json", "log": tmp_path / "log.txt"}
    files["model"].write_bytes(identity_classifier(4))
    files["result"].write_text(json.dumps({"accuracy": 0.5}))
    files["log"].write_text(f"trained outside a runner {marker}\n")

    p = await open_as(page, stack, "engineer", f"#/tasks/{task['id']}")
    edit = "form[aria-label='Edit the task']"
    await p.fill(f"{edit} input[name=command]", "python train.py --epochs 1")
    await p.click(f"{edit} button")
    await p.wait_for_selector("dl.kv dd:text-is('python train.py --epochs 1')")
    code_form = "form[aria-label='Upload code (.zip or .tar.gz)']"
    await p.set_input_files(f"{code_form} input[name=file]", str(files["code"]))
    await p.click(f"{code_form} button")
    await p.wait_for_selector("#toast div:text('Code stored')")
    await p.wait_for_selector("dl.kv dd:text-matches('^store:')")
    for label, key in (("a model", "model"), ("a result file", "result"), ("log text", "log")):
        await p.set_input_files(f"form[aria-label='Upload {label}'] input[name=file]", str(files[key]))
        await p.click(f"form[aria-label='Upload {label}'] button")
        await p.wait_for_selector(f"[data-uploaded='{label}']")
    async with client(stack, "viewer") as c:
        saved = (await c.get(f"/api/mtt/tasks/{task['id']}")).json()
        log = (await c.get(f"/api/mtt/tasks/{task['id']}/logs")).json()  # attempt 1 before any run
    assert saved["command"] == "python train.py --epochs 1" and saved["code_location"].startswith("store:")
    assert f"trained outside a runner {marker}" in log["text"]
    assert page.console_errors() == []
