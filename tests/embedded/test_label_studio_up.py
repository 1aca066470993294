"""`mlife up --label-studio`, for real: the pinned Label Studio started beside the platform (the project's
.venv-labelstudio, so nothing is installed again), DAM's connector wired to it — a labelling task created
through the gateway becomes a Label Studio project, and an annotation made there comes back through the
webhook — the login kept 0600 under $MLIFE_HOME, and nothing left running after the stop."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest

from mlife.cli import build_parser
from tests.dam.helpers import png
from tests.support.embedded import TOKEN, start, stop, wait_until_up
from tests.support.processes import alive, descendants, exclusive, free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(1800)  # installs Label Studio into .venv-labelstudio on a fresh machine
ROOT = Path(__file__).resolve().parents[2]


def label_in_label_studio(ls: httpx.Client, project: int) -> None:
    """Label Studio holds the task's items; one annotation per item, made as its user would."""
    body = ls.get("/api/tasks", params={"project": project, "page_size": 100}).json()
    tasks = body["tasks"] if isinstance(body, dict) else body
    assert len(tasks) == 2
    for t in tasks:
        r = ls.post(f"/api/tasks/{t['id']}/annotations/", json={"result": [
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}]})
        assert r.status_code == 201, r.text


def test_mlife_up_with_label_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args(["up", "--label-studio"]).label_studio
    venv = Path(os.environ.get("MLIFE_LABELSTUDIO_VENV") or ROOT / ".venv-labelstudio")
    from mlife import labelstudio

    with exclusive("venv-labelstudio"):  # as DAM's tests do: one process installs, the others wait
        labelstudio.ensure_installed(venv)
    monkeypatch.setenv("MLIFE_LABELSTUDIO_VENV", str(venv))
    monkeypatch.setenv("MLIFE_LABELSTUDIO_PORT", str(free_port()))  # not 8080: a developer's may run there
    monkeypatch.setenv("MLIFE_LABEL_STUDIO", "1")  # what --label-studio sets (embedded.start runs a bare `mlife up`)
    home, port, log = tmp_path / "home", free_port(), []
    proc = start(home, port, log)
    try:
        wait_until_up(proc, log, timeout=900)
        children = descendants(proc.pid)
        text = "".join(log)
        found = re.search(r"Label Studio is up at (http://127\.0\.0\.1:\d+): log in as (\S+), password in (\S+);", text)
        assert found, text[-3000:]
        url, username, password_file = found.groups()
        folder = home / "labelstudio"
        assert Path(password_file) == folder / "password"
        for name in ("password", "token", "webhook.secret"):
            assert (folder / name).stat().st_mode & 0o777 == 0o600, name
        assert (folder / "data").is_dir() and not (folder / "venv").exists(), "the given venv is used"
        token = (folder / "token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as ls, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}/api/dam", timeout=60,
                             headers={"Authorization": f"Bearer {TOKEN}"}) as dam:
            assert httpx.get(f"{url}/api/projects", timeout=30).status_code == 401, "the API needs the token"
            me = ls.get("/api/current-user/whoami")
            assert me.status_code == 200 and me.json()["email"] == username
            md5s = [dam.post("/files", content=png(40, 30, seed=i)).json()["md5"] for i in range(2)]
            r = dam.post("/documents", params={"name": "to-label"}, json=[{"md5": m} for m in md5s])
            assert r.status_code == 201, r.text
            doc = r.json()["id"]
            r = dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat", "dog"]})
            assert r.status_code == 201, r.text
            task = r.json()
            assert task["ls_project_id"] and task["item_count"] == 2 and task["status"] == "open"
            project = ls.get(f"/api/projects/{task['ls_project_id']}")
            assert project.status_code == 200, project.text
            hooks = ls.get("/api/webhooks/", params={"project": task["ls_project_id"]}).json()
            assert [h["url"] for h in hooks] and all(
                re.fullmatch(r"http://127\.0\.0\.1:\d+/api/dam/webhooks/labelstudio", h["url"]) for h in hooks), hooks
            label_in_label_studio(ls, task["ls_project_id"])

            def completed() -> bool:
                return bool(dam.get(f"/labelling-tasks/{task['id']}").json()["status"] == "completed")

            asyncio.run(wait_for(completed, 60, "the annotations to come back to DAM through the webhook"))
            rows = dam.get(f"/documents/{doc}/rows").json()["items"]
            assert [x["label"] for x in rows] == ["cat", "cat"]
    finally:
        code = stop(proc)
    assert code == 0, "".join(log[-40:])
    left = [pid for pid in children if alive(pid)]
    assert not left, f"orphans after stop: {left}"

    log2: list[str] = []
    proc2 = start(home, port, log2)
    try:  # the login, the token and the data are kept across a restart
        wait_until_up(proc2, log2, timeout=900)
        url2 = re.search(r"Label Studio is up at (http://127\.0\.0\.1:\d+)", "".join(log2))
        assert url2, "".join(log2)[-3000:]
        r = httpx.get(f"{url2.group(1)}/api/projects/{task['ls_project_id']}", timeout=60,
                      headers={"Authorization": f"Token {token}"})
        assert r.status_code == 200, r.text
    finally:
        assert stop(proc2) == 0
