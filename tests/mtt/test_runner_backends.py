"""Runner backends are plugins (issue 16): the built-ins conform to the runners seam (bubblewrap runs and kills
a command here), and an outside package's backend — installed as an entry point — runs a task's command through
MTT's real API and runner on PostgreSQL, NATS, S3 and MLflow when the task names it (`params.runner`) or the
runner's setting does; a name MTT does not have is a 422 at creation, and a runner set to one fails its runs
with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.plugins.seams.runners import ProcessSpec, RunnerConfig
from mlife_shared.plugins.testing import check_installed, check_plugin
from mtt.config import Settings
from tests.support.mtt import digits, put_dataset, task_in
from tests.support.plugin_install import InstalledPlugin, install_plugin

RELAY = '''
import asyncio, os, signal

class _Proc:
    def __init__(self, proc):
        self.proc = proc
    async def read(self):
        return await self.proc.stdout.read(65536)
    async def wait(self):
        return await self.proc.wait()
    def exited(self):
        return self.proc.returncode
    async def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
    async def cleanup(self):
        pass

class _Launcher:
    workdir_inside = None
    notice = "relayed by the test backend"
    async def start(self, spec):
        proc = await asyncio.create_subprocess_exec(
            *spec.argv, cwd=str(spec.cwd), env={**spec.env, "RELAYED_BY": "relay"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return _Proc(proc)

class Relay:
    name, api, description = "relay", ">=1,<2", "a plain subprocess, marked"
    def unavailable(self, config):
        return None
    def prepare(self, config):
        return _Launcher()
'''

SCRIPT = "import os\nprint('RELAYED_BY', os.environ.get('RELAYED_BY', 'nobody'), 'uid', os.getuid(), flush=True)\n"


def test_the_builtin_backends_conform() -> None:
    assert shutil.which("bwrap"), "bubblewrap is installed on test machines (make test installs it)"
    bwrap = check_installed("runners", "bwrap")
    assert bwrap.unavailable(RunnerConfig()) is None  # so the kit really ran and killed commands in the sandbox
    check_installed("runners", "unsandboxed")  # the kit's config opts out, so it ran them too
    assert "ALLOW_UNSANDBOXED" in (check_installed("runners", "unsandboxed").unavailable(RunnerConfig()) or "")
    check_installed("runners", "docker")  # without an engine here: its shape only


def test_the_conformance_kit_catches_a_backend_that_loses_the_log() -> None:
    class Mute:
        async def read(self) -> bytes:
            return b""

        async def wait(self) -> int:
            return 0

        def exited(self) -> int | None:
            return 0

        async def kill(self) -> None: ...

        async def cleanup(self) -> None: ...

    class Launcher:
        workdir_inside: str | None = None
        notice: str | None = None

        async def start(self, spec: ProcessSpec) -> Mute:
            return Mute()

    class Deaf:
        name, api, description = "deaf", ">=1,<2", "loses the output"

        def unavailable(self, config: RunnerConfig) -> str | None:
            return None

        def prepare(self, config: RunnerConfig) -> Launcher:
            return Launcher()

    with pytest.raises(AssertionError, match="output should be readable"):
        check_plugin("runners", Deaf())


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InstalledPlugin:
    return install_plugin(monkeypatch, tmp_path / "site", distribution="mlife-test-runners", seam="runners",
                          entries={"relay": "Relay"}, module="mlife_test_runners", source=RELAY)


async def _train(mtt: httpx.AsyncClient, settings: Settings, code: Path, **params: Any) -> httpx.Response:
    ds, key = await put_dataset(settings, digits(2))
    return await mtt.post("/tasks", json={"kind": "train", "datasets": [{"dataset_id": ds, "manifest_key": key}],
                                          "code_location": str(code), "command": "python main.py", "run": True,
                                          "params": params})


async def _log(mtt: httpx.AsyncClient, task_id: str) -> str:
    return str((await mtt.get(f"/tasks/{task_id}/logs")).json()["text"])


async def test_a_task_or_the_setting_picks_the_backend(relay: InstalledPlugin, mtt: httpx.AsyncClient,
                                                       settings: Settings, start_runner, tmp_path: Path) -> None:
    listed = {p["name"]: (p["state"], p["builtin"]) for p in (await mtt.get("/plugins")).json()["plugins"]
              if p["seam"] == "runners"}
    assert listed == {"bwrap": ("active", True), "docker": ("active", True), "unsandboxed": ("active", True),
                      "relay": ("active", False)}
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text(SCRIPT)

    unknown = await _train(mtt, settings, code, runner="nope")
    assert unknown.status_code == 422
    assert "the runners plugin 'nope' is not installed; active ones: bwrap, docker, relay, unsandboxed" in unknown.text

    relayed, default = (await _train(mtt, settings, code, runner="relay")).json(), (await _train(mtt, settings, code)).json()
    runner = start_runner("runner-plugins")
    for task in (relayed, default):
        done = await task_in(mtt, task["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", (done["error"], await _log(mtt, task["id"]))
    log = await _log(mtt, relayed["id"])
    assert "runner backend relay" in log and "relayed by the test backend" in log and "RELAYED_BY relay" in log
    log = await _log(mtt, default["id"])
    assert "runner backend bwrap" in log and f"RELAYED_BY nobody uid {settings.sandbox_uid}" in log
    runner.stop_event.set()
    await runner.task

    settings.runner_backend = "missing"  # an operator's typo: the runner starts, and says why it runs nothing
    broken, chosen = (await _train(mtt, settings, code)).json(), (await _train(mtt, settings, code, runner="relay")).json()
    start_runner("runner-missing")
    done = await task_in(mtt, broken["id"], "succeeded", "failed")
    assert done["status"] == "failed"
    assert done["error"] == ("this runner cannot run task code: the runners plugin 'missing' is not installed; "
                             "active ones: bwrap, docker, relay, unsandboxed")
    assert "RELAYED_BY" not in await _log(mtt, broken["id"])
    done = await task_in(mtt, chosen["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and "RELAYED_BY relay" in await _log(mtt, chosen["id"])
