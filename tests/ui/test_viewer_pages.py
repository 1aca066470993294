"""A viewer opens every page of the UI (every link of the navigation, and a detail page of each kind of thing)
on a platform that holds data with missing values, and reads no `null`, `undefined`, `NaN` or raw JSON."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.support.stack import Stack
from tests.support.ui import Page, client, create_task, group, login, register_model, table_document

MISSING = re.compile(r"\bnull\b|\bundefined\b|\bNaN\b|\[object Object\]|\{\"")


async def seed(stack: Stack) -> dict[str, Any]:
    """One of each kind of thing, most optional fields left out, and a deployment metric (an object)."""
    marker = uuid.uuid4().hex[:6]
    out: dict[str, Any] = {"function": f"viewer-fn-{marker}"}
    async with client(stack, "tester") as c:
        r = await c.post("/api/bam/badcases", json={"function": out["function"], "description": "bare"})
        assert r.status_code == 201, r.text
        out["badcase"] = r.json()["id"]
    rows = "f0,f1,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(10))
    out["document"] = (await table_document(stack, f"viewer-doc-{marker}", rows))["id"]
    datasets = await group(stack, f"viewer-ds-{marker}", out["document"], function=out["function"])
    out["datasets"] = {purpose: d["id"] for purpose, d in datasets.items()}
    out["task"] = (await create_task(stack, f"viewer-task-{marker}", out["datasets"]["test"]))["id"]
    out["model"] = f"viewer-model-{marker}"
    out["version"] = (await register_model(stack, out["model"], function=f"{out['function']}-m"))["id"]
    async with client(stack, "maintainer") as c:
        r = await c.post("/api/msm/deployments", json={"name": f"viewer-{marker}", "target": "local",
                                                       "versions": [{"model_version_id": out["version"]}],
                                                       "override_reason": "the viewer test",
                                                       "metrics_schema": {"latency_ms": "number"}})
        assert r.status_code in (201, 202), r.text
        out["deployment"] = r.json()["id"]
        r = await c.post(f"/api/msm/deployments/{out['deployment']}/metrics",
                         json={"values": {"latency_ms": 12}})
        assert r.status_code == 201, r.text
    return out


async def test_a_viewer_reads_no_null_on_any_page(page: Page, stack: Stack) -> None:
    things = await seed(stack)
    await login(page, stack, "viewer")
    p = page.page
    nav = await p.eval_on_selector_all("header nav a", "as => as.map(a => a.getAttribute('href'))")
    details = [f"#/badcases/{things['badcase']}", f"#/data/documents/{things['document']}",
               f"#/data/datasets/{things['datasets']['train']}", f"#/data/datasets/{things['datasets']['test']}",
               f"#/tasks/{things['task']}", "#/data/files",
               f"#/models/{things['model']}", f"#/deployments/{things['deployment']}"]
    assert len(nav) >= 7
    seen = []
    for href in nav + details:
        await p.goto(f"{stack.url}/{href}")
        await p.wait_for_selector("main h1")
        await p.wait_for_load_state("networkidle")
        body = await p.inner_text("body")
        found = MISSING.search(body)
        assert found is None, f"{href} shows {found.group(0)!r}: …{body[max(0, found.start() - 200):found.end() + 100]}…"
        seen.append(href)
    # the deployment's metric is shown as "name: value", not as raw JSON
    assert "latency_ms: 12" in await p.inner_text("main")
    assert seen == nav + details
    assert page.console_errors() == []
