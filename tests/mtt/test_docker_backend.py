"""The Docker runner backend against a fake engine (no Docker daemon runs here): the container gets the
attempt's folders mounted (inputs read-only), the environment at container paths and no credential, the
isolation options (non-root, no network, read-only root, no capabilities, limits); its logs are streamed;
cancel kills it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx

from mtt.config import Settings
from mtt.runner.backends import CONTAINER_WORKDIR, DockerBackend
from tests.support.mtt import digits, put_dataset, task_in
from tests.support.outbox import outbox_events


class FakeContainer:
    def __init__(self, image: str, command: list[str], kw: dict[str, Any]) -> None:
        self.image, self.command, self.kw = image, command, kw
        self.stopped = threading.Event()
        self.removed = False
        self.mounts = {v["bind"]: Path(h) for h, v in kw["volumes"].items()}

    def _host_path(self, container_path: str) -> Path:
        for bind, host in self.mounts.items():
            if container_path == bind or container_path.startswith(bind + "/"):
                return host / Path(container_path).relative_to(bind)
        raise AssertionError(f"{container_path} is not mounted")

    def logs(self, *, stream: bool, follow: bool, stdout: bool, stderr: bool):  # type: ignore[no-untyped-def]
        yield f"fake engine: {self.image} {' '.join(self.command)}\n".encode()
        if "forever" in self.command:
            self.stopped.wait()
            return
        # what the SDK would do inside the container, written through the bind mount
        out = self._host_path(self.kw["environment"]["MLIFE_OUTPUT_DIR"])
        (out / "metrics.jsonl").write_text(json.dumps({"key": "loss", "value": 0.25}) + "\n")
        yield b"done\n"

    def wait(self) -> dict[str, int]:
        if "forever" in self.command:
            self.stopped.wait()
            return {"StatusCode": 137}
        return {"StatusCode": 0}

    def stop(self, timeout: int = 10) -> None:
        self.stopped.set()

    def kill(self) -> None:
        self.stopped.set()

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeEngine:
    def __init__(self) -> None:
        self.started: list[FakeContainer] = []
        self.containers = self

    def run(self, image: str, command: list[str], **kw: Any) -> FakeContainer:
        assert kw["detach"] is True
        c = FakeContainer(image, command, kw)
        self.started.append(c)
        return c


async def test_docker_backend_runs_and_cancels(mtt: httpx.AsyncClient, settings: Settings, start_runner,
                                               tmp_path: Path) -> None:
    ds, key = await put_dataset(settings, digits(5))
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('in a container')\n")
    engine = FakeEngine()
    start_runner("runner-docker", backend=DockerBackend("mlife/train:1", client_factory=lambda: engine,
                                                        sdk_dir=Path(__file__).resolve().parents[2] / "mlife"))
    body = {"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}], "code_location": str(code),
            "command": "python train.py", "params": {"lr": 0.1}, "run": True}
    task = (await mtt.post("/tasks", json=body)).json()
    done = await task_in(mtt, task["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"] == {"loss": 0.25}
    c = engine.started[0]
    assert c.image == "mlife/train:1" and c.command == ["python", "train.py"]
    assert c.kw["working_dir"] == f"{CONTAINER_WORKDIR}/code"
    env = c.kw["environment"]
    assert env["MLIFE_TASK_ID"] == task["id"] and json.loads(env["MLIFE_TASK_PARAMS"]) == {"lr": 0.1}
    assert env["MLIFE_DATASET_MANIFEST"] == f"{CONTAINER_WORKDIR}/data/{ds}.jsonl"
    assert env["PYTHONPATH"] == "/mlife/sdk" and env["HOME"] == f"{CONTAINER_WORKDIR}/home"
    assert "MLIFE_S3_SECRET_KEY" not in env and "MLIFE_DATABASE_URL" not in env  # no runner secrets leak
    assert not [k for k in env if k.startswith("MLFLOW_")]  # the container has no network: the runner reports
    mounts = {v["bind"]: v["mode"] for v in c.kw["volumes"].values()}
    assert mounts == {f"{CONTAINER_WORKDIR}/code": "rw", f"{CONTAINER_WORKDIR}/out": "rw",
                      f"{CONTAINER_WORKDIR}/home": "rw", f"{CONTAINER_WORKDIR}/data": "ro", "/mlife/sdk/mlife": "ro"}
    assert c.kw["user"] == "65534:65534" and c.kw["network_mode"] == "none" and c.kw["read_only"] is True
    assert c.kw["cap_drop"] == ["ALL"] and c.kw["security_opt"] == ["no-new-privileges"]
    assert "/tmp" in c.kw["tmpfs"] and c.kw["mem_limit"] == "8192m" and c.kw["pids_limit"] == 512
    assert c.kw["nano_cpus"] == 2 * 10**9
    assert c.kw["labels"]["mlife.task_id"] == task["id"] and c.removed
    assert "fake engine: mlife/train:1 python train.py" in (await mtt.get(f"/tasks/{task['id']}/logs")).json()["text"]

    forever = (await mtt.post("/tasks", json={**body, "command": "python train.py forever"})).json()
    await task_in(mtt, forever["id"], "running")
    assert (await mtt.post(f"/tasks/{forever['id']}/cancel")).status_code == 202
    assert (await task_in(mtt, forever["id"], "cancelled", "failed", "succeeded"))["status"] == "cancelled"
    assert engine.started[1].stopped.is_set() and engine.started[1].removed
    assert [e["data"]["task_id"] for e in await outbox_events(settings, "task.failed")] == [forever["id"]]


async def test_docker_backend_takes_the_sandbox_settings(settings: Settings, tmp_path: Path) -> None:
    """make_backend gives the docker backend the sandbox's user, network and limits; `host` network means the
    engine's default bridge (never the host's own network namespace)."""
    from mtt.runner.backends import ProcessSpec
    from mtt.runner.runner import make_backend

    engine = FakeEngine()
    backend = make_backend(settings.model_copy(update={
        "runner_backend": "docker", "sandbox_uid": 4242, "sandbox_network": "host", "sandbox_memory_mb": 1024,
        "docker_cpus": 0.5, "sandbox_max_processes": 64}))
    assert isinstance(backend, DockerBackend)
    backend.client_factory = lambda: engine
    work = tmp_path / "attempt"
    for name in ("code", "out", "data", "model"):
        (work / name).mkdir(parents=True)
    env = {"MLIFE_OUTPUT_DIR": f"{CONTAINER_WORKDIR}/out"}
    running = await backend.start(ProcessSpec(task_id="t", argv=["python", "x.py"], workdir=work, cwd=work / "code",
                                              env=env))
    while await running.read():
        pass
    kw = engine.started[0].kw
    assert kw["user"] == "4242:4242" and "network_mode" not in kw and kw["mem_limit"] == "1024m"
    assert kw["nano_cpus"] == 5 * 10**8 and kw["pids_limit"] == 64
    assert {v["bind"]: v["mode"] for v in kw["volumes"].values()}[f"{CONTAINER_WORKDIR}/model"] == "ro"
