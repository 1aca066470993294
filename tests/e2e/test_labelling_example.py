"""The worked example examples/labelling_system/labeller.py, run as an outsider runs it: a separate process logged
in to the bus as the read-only `reader` (the platform's NATS as compose runs it, per-user permissions) and to the
gateway with a tester's API token. A labelling task created through the API gets one annotation per item from it
and completes (it then sees `labelling.completed`); stopped, it misses nothing published meanwhile — a task and a
badcase test-data request made while it was down are handled once it is back — and handles no event twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.dam.helpers import md5, png
from tests.support.distributed import Platform
from tests.support.processes import tail
from tests.support.waiting import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "labelling_system" / "labeller.py"
LABELS = ["cat", "dog"]
# the rows' annotations, the pre-labels the task takes, and what the toy labeller answers for each
ROWS = [("dog", "dog"), ("cat", "cat"), ("bird", "cat")]  # "bird" is no label of the task: the first label


class Labeller:
    """The example as a process of its own; what it handled is read from its --record file."""

    def __init__(self, platform: Platform, token: str, home: Path, durable: str) -> None:
        assert platform.nats is not None
        self.argv = [sys.executable, str(EXAMPLE), "--gateway", platform.url, "--token", token,
                     "--nats", platform.nats.url, "--user", "reader", f"--password={platform.nats.passwords['reader']}",
                     "--durable", durable, "--record", str(home / "record.jsonl")]
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "labeller.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def handled(self) -> list[dict[str, Any]]:
        if self.proc is not None and self.proc.poll() is not None and self.proc.returncode != 0:
            raise AssertionError(f"the labeller exited with {self.proc.returncode}:\n{tail(self.log)}")
        path = self.home / "record.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    async def sees(self, event_type: str, **fields: str) -> dict[str, Any]:
        def _seen() -> dict[str, Any]:  # {} (falsy) until then
            return next((e for e in self.handled() if e["type"] == event_type
                         and all(e.get(k) == v for k, v in fields.items())), {})

        return await wait_for(_seen, 180, f"the labeller handles {event_type} {fields}:\n{tail(self.log)}")


async def labeller_token(c: httpx.AsyncClient, name: str) -> str:
    """An API token of a new user with the tester role: the least a labelling system needs."""
    password = "labeller " + uuid.uuid4().hex
    (await c.post("/api/gateway/users", json={"username": name, "password": password, "role": "tester"})
     ).raise_for_status()
    async with httpx.AsyncClient(base_url=str(c.base_url), timeout=60) as anon:
        login = await anon.post("/api/gateway/login", json={"username": name, "password": password})
        login.raise_for_status()
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())  # a Secure cookie: sent by hand on http
        t = await anon.post("/api/gateway/tokens", json={"name": "labelling system"},
                            headers={"X-CSRF-Token": login.json()["csrf_token"], "Cookie": cookie})
        t.raise_for_status()
        return str(t.json()["token"])


async def document(c: httpx.AsyncClient, marker: str) -> tuple[str, dict[str, str]]:
    """A document of three images annotated as ROWS says; its id and each image's md5 -> expected annotation."""
    rows, expected = [], {}
    for n, (annotation, answer) in enumerate(ROWS):
        data = png(seed=random.randrange(2**32))
        r = await c.post("/api/dam/files", params={"name": f"labelling-example-{marker}/{n}.png"}, content=data)
        assert r.status_code == 201, r.text
        rows.append({"md5": md5(data), "annotation": annotation})
        expected[md5(data)] = answer
    doc = await c.post("/api/dam/documents", params={"name": f"labelling example {marker}"}, json=rows)
    assert doc.status_code == 201, doc.text
    return str(doc.json()["id"]), expected


async def labelling_task(c: httpx.AsyncClient, document_id: str) -> str:
    r = await c.post("/api/dam/labelling-tasks", json={"document_id": document_id, "labels": LABELS,
                                                       "prelabel": {"column": "annotation"}})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open"
    return str(r.json()["id"])


async def check_labelled(c: httpx.AsyncClient, task_id: str, expected: dict[str, str]) -> None:
    """Every item carries the labeller's annotation, and the task completed into a new document version."""
    items = (await c.get(f"/api/dam/labelling-tasks/{task_id}/items")).json()
    assert {i["md5"]: i["annotation"] for i in items} == expected
    task = (await c.get(f"/api/dam/labelling-tasks/{task_id}")).json()
    assert task["status"] == "completed" and task["annotated_count"] == len(expected), task
    assert task["completed_version"] is not None


async def test_the_labelling_example_annotates_tasks_and_resumes_without_losing_events(
        distributed: Platform, tmp_path: Path) -> None:
    p = distributed
    marker = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=p.url, headers={"Authorization": f"Bearer {p.token}"}, timeout=60) as c:
        labeller = Labeller(p, await labeller_token(c, f"labeller-{marker}"), tmp_path, f"acme-labeller-{marker}")
        document_id, expected = await document(c, marker)

        labeller.start()
        first = await labelling_task(c, document_id)
        done = await labeller.sees("labelling.requested", task=first)
        assert done["annotated"] == len(ROWS) and done["status"] == "completed", done
        completed = await labeller.sees("labelling.completed", task=first)
        await check_labelled(c, first, expected)
        assert completed["annotated"] == len(ROWS)
        assert labeller.stop() == 0, tail(labeller.log)

        # while it is down: a second task, and badcases sent to test data
        second = await labelling_task(c, document_id)
        r = await c.post("/api/bam/badcases", json={
            "function": f"labelling-example-{marker}", "features": {"f0": 1.0, "f1": 0.0}, "prediction": "0",
            "ground_truth": "1", "description": "sent to test data while the labeller is down"})
        assert r.status_code == 201, r.text
        badcase = str(r.json()["id"])
        r = await c.post("/api/bam/badcases/add-to-test-data", json={"ids": [badcase]})
        assert r.status_code == 200, r.text
        (request,) = r.json()["request_ids"]
        assert (await c.get(f"/api/dam/labelling-tasks/{second}")).json()["status"] == "open"

        labeller.start()  # the same durable: it goes on where it stopped
        try:
            await labeller.sees("labelling.completed", task=second)
            test_data = await labeller.sees("badcase.test_data_requested", request=request)
            assert test_data["badcases"] == {f"labelling-example-{marker}": [badcase]}
            assert test_data["ground_truth"] == {badcase: "1"}
            await check_labelled(c, second, expected)
        finally:
            assert labeller.stop() == 0, tail(labeller.log)

    handled = labeller.handled()
    ids = [e["id"] for e in handled]
    assert len(ids) == len(set(ids)), "an event acknowledged before the stop came again after it"
    requested = [e["task"] for e in handled if e["type"] == "labelling.requested" and e["task"] in (first, second)]
    assert requested == [first, second]
