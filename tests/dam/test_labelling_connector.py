"""A second labelling tool behind the labelling protocol: a small real tool served over HTTP (projects, tasks with
guesses, answers, a signed webhook) and its connector, found by entry point as an outside package's would be. DAM
records which connector a task uses, pushes the items, takes the answers by webhook or by polling, and completes
the task into a new document version. The built-in Label Studio connector conforms (tests/dam/test_labelling.py
runs it against a real Label Studio)."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from mlife_shared.plugins import SEAMS, seams_of
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.labelling import (
    Connection,
    ExternalAnnotation,
    ItemSpec,
    Kind,
    ProjectSpec,
    WebhookRefused,
)
from mlife_shared.plugins.testing import check_installed, check_plugin
from tests.dam.helpers import dam_settings, md5, png, serve_dam
from tests.support.apps import serve_app
from tests.support.processes import free_port
from tests.support.waiting import wait_for

SIGNATURE = "X-Minitool-Signature"


def minitool_app() -> FastAPI:
    """The tool: projects of tasks (a URL and a guess each); an answer is kept and, when the project has a webhook,
    sent to it signed with the project's secret."""
    app = FastAPI()
    projects: dict[int, dict[str, Any]] = {}
    tasks: dict[int, dict[str, Any]] = {}

    @app.post("/api/tool/projects")
    async def create_project(body: dict[str, Any]) -> dict[str, int]:
        projects[len(projects) + 1] = {"labels": body["labels"], "webhook": body.get("webhook"),
                                       "secret": body.get("secret"), "tasks": []}
        return {"id": len(projects)}

    @app.post("/api/tool/projects/{pid}/tasks")
    async def add_tasks(pid: int, body: list[dict[str, Any]]) -> dict[str, list[int]]:
        ids = []
        for t in body:
            tasks[len(tasks) + 1] = {"project": pid, **t, "answer": None}
            projects[pid]["tasks"].append(len(tasks))
            ids.append(len(tasks))
        return {"ids": ids}

    @app.get("/api/tool/projects/{pid}/tasks")
    async def list_tasks(pid: int) -> list[dict[str, Any]]:
        return [{"id": t, **tasks[t]} for t in projects[pid]["tasks"]]

    @app.post("/api/tool/tasks/{tid}/answer")
    async def answer(tid: int, request: Request, notify: bool = True) -> dict[str, str]:
        task = tasks[tid]
        task["answer"] = (await request.json())["answer"]
        project = projects[task["project"]]
        if notify and project["webhook"]:
            body = json.dumps({"project": task["project"], "task": tid, "answer": task["answer"]}).encode()
            sig = hmac.new(project["secret"].encode(), body, "sha256").hexdigest()
            async with httpx.AsyncClient(timeout=30) as c:
                r = await c.post(project["webhook"], content=body, headers={SIGNATURE: sig})
            if r.status_code != 200:
                raise HTTPException(502, f"the webhook answered {r.status_code}")
        return {"status": "ok"}

    return app


class Minitool:
    """The connector an outside package would ship: its tool's address and secret from its own environment."""

    name = "minitool"
    api = ">=1,<2"
    description = "labelling in Minitool"

    def _env(self) -> tuple[str, str]:
        return os.environ.get("MINITOOL_URL", ""), os.environ.get("MINITOOL_SECRET", "")

    def label_config(self, spec: ProjectSpec) -> str:
        return json.dumps({"choose one of": list(spec.labels)})

    async def create_project(self, connection: Connection, spec: ProjectSpec) -> str:
        url, secret = self._env()
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            r = await c.post("/projects", json={"labels": list(spec.labels), "webhook": connection.webhook_url,
                                                "secret": secret})
        r.raise_for_status()
        return str(r.json()["id"])

    async def import_tasks(self, connection: Connection, project: str, spec: ProjectSpec,
                           items: Sequence[ItemSpec]) -> list[str]:
        async with httpx.AsyncClient(base_url=self._env()[0], timeout=30) as c:
            r = await c.post(f"/projects/{project}/tasks", json=[{"url": i.url, "ref": i.item_id,
                                                                  "guess": i.prelabel} for i in items])
        r.raise_for_status()
        return [str(i) for i in r.json()["ids"]]

    async def fetch_annotations(self, connection: Connection, project: str) -> list[ExternalAnnotation]:
        async with httpx.AsyncClient(base_url=self._env()[0], timeout=30) as c:
            r = await c.get(f"/projects/{project}/tasks")
        r.raise_for_status()
        return [ExternalAnnotation(project, str(t["id"]), t["answer"]) for t in r.json() if t["answer"] is not None]

    def webhook(self, connection: Connection, headers: Mapping[str, str], body: bytes) -> list[ExternalAnnotation]:
        secret = self._env()[1]
        given = next((v for k, v in headers.items() if k.lower() == SIGNATURE.lower()), "")
        if not secret or not hmac.compare_digest(given, hmac.new(secret.encode(), body, "sha256").hexdigest()):
            raise WebhookRefused(f"missing or wrong {SIGNATURE}")
        payload = json.loads(body)
        return [ExternalAnnotation(str(payload["project"]), str(payload["task"]), payload["answer"])]

    def annotation(self, result: Any, kind: Kind) -> Any:
        return result if kind == "classification" and isinstance(result, str) else None


def test_the_connectors_conform() -> None:
    check_installed("labelling", "labelstudio")
    check_plugin("labelling", Minitool())


@pytest.fixture
async def tool(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    monkeypatch.setenv("MINITOOL_URL", f"http://127.0.0.1:{port}/api/tool")
    monkeypatch.setenv("MINITOOL_SECRET", "minitool-secret")
    async for client in serve_app(minitool_app(), port, "tool"):
        yield client


@pytest.fixture
async def dam_with_tool(dam_db: str, nats_url: str, tmp_path: Path, tool: httpx.AsyncClient
                        ) -> AsyncIterator[httpx.AsyncClient]:
    """DAM over HTTP (the tool calls its webhook) with the Minitool connector installed by entry point."""
    port = free_port()
    settings = dam_settings(dam_db, nats_url, tmp_path, public_url=f"http://127.0.0.1:{port}",
                            labelstudio_reconcile_seconds=0)
    async for client in serve_dam(settings, port):
        eps = {seam: list(entry_points(group=SEAMS[seam].group)) for seam in seams_of("dam")}
        eps["labelling"].append(EntryPoint("minitool", f"{__name__}:Minitool", SEAMS["labelling"].group))
        client.app.state.plugins = Plugins(seams_of("dam"), eps)  # type: ignore[attr-defined]
        yield client


async def document(dam: httpx.AsyncClient, name: str, guesses: list[str]) -> tuple[str, list[str]]:
    md5s = []
    for n in range(len(guesses)):
        data = png(20, 10, seed=500 + n + 10 * len(name))
        assert (await dam.post("/files", content=data)).status_code in (200, 201)
        md5s.append(md5(data))
    r = await dam.post("/documents", params={"name": name},
                       json=[{"md5": m, "annotation": g} for m, g in zip(md5s, guesses, strict=True)])
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), md5s


async def test_a_task_in_another_tool_by_webhook_and_by_polling(dam_with_tool: httpx.AsyncClient,
                                                                 tool: httpx.AsyncClient) -> None:
    dam = dam_with_tool
    doc, md5s = await document(dam, "in-minitool", ["cat", "dog"])
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat", "dog"], "connector": "minitool",
                                                 "prelabel": {"column": "annotation"}})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["connector"] == "minitool" and task["external_project"] and task["ls_project_id"] is None
    assert json.loads(task["label_config"]) == {"choose one of": ["cat", "dog"]}
    in_tool = (await tool.get(f"/projects/{task['external_project']}/tasks")).json()
    assert [t["guess"] for t in in_tool] == ["cat", "dog"]
    assert [t["url"].rsplit("/", 2)[-2] for t in in_tool] == md5s
    items = (await dam.get(f"/labelling-tasks/{task['id']}/items")).json()
    assert [i["external_id"] for i in items] == [str(t["id"]) for t in in_tool]

    for t, answer in zip(in_tool, ["dog", "dog"], strict=True):  # the labeller answers; the tool calls DAM back
        assert (await tool.post(f"/tasks/{t['id']}/answer", json={"answer": answer})).status_code == 200

    async def completed() -> bool:
        return (await dam.get(f"/labelling-tasks/{task['id']}")).json()["status"] == "completed"

    await wait_for(completed, 30, "the task to complete through the tool's webhooks")
    rows = (await dam.get(f"/documents/{doc}/rows")).json()["items"]
    assert [x["label"] for x in rows] == ["dog", "dog"]

    doc2, _ = await document(dam, "polled", ["cat"])
    polled = (await dam.post("/labelling-tasks", json={"document_id": doc2, "labels": ["cat", "dog"],
                                                       "connector": "minitool"})).json()
    (t2,) = (await tool.get(f"/projects/{polled['external_project']}/tasks")).json()
    assert (await tool.post(f"/tasks/{t2['id']}/answer", params={"notify": "false"},
                            json={"answer": "cat"})).status_code == 200
    assert (await dam.get(f"/labelling-tasks/{polled['id']}")).json()["status"] == "open"
    done = (await dam.post(f"/labelling-tasks/{polled['id']}/reconcile")).json()
    assert done["status"] == "completed" and done["completed_version"] == 2


async def test_a_webhook_is_verified_by_its_connector_and_a_connector_must_be_active(
        dam_with_tool: httpx.AsyncClient) -> None:
    dam = dam_with_tool
    body = json.dumps({"project": 1, "task": 1, "answer": "cat"}).encode()
    assert (await dam.post("/webhooks/minitool", content=body)).status_code == 401
    assert (await dam.post("/webhooks/minitool", content=body, headers={SIGNATURE: "0" * 64})).status_code == 401
    good = hmac.new(b"minitool-secret", body, "sha256").hexdigest()
    assert (await dam.post("/webhooks/minitool", content=body, headers={SIGNATURE: good})).status_code == 200
    absent = await dam.post("/webhooks/nosuchtool", content=body)
    assert absent.status_code == 422 and "labelstudio, minitool" in absent.json()["detail"]
    doc, _ = await document(dam, "nowhere", ["cat"])
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat"], "connector": "nosuchtool"})
    assert r.status_code == 422 and "'nosuchtool' is not installed" in r.json()["detail"]
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat"], "connector": "labelstudio"})
    assert r.status_code == 422 and "MLIFE_DAM_LABELSTUDIO_URL" in r.json()["detail"]
    no_tool = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat"]})
    assert no_tool.status_code == 201 and no_tool.json()["connector"] is None
