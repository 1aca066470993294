"""The runners seam: where and how a task's command runs (MTT). A runner backend is asked to `prepare` once per
runner process with the operator's settings (`RunnerConfig`) and gives back a `Launcher`; the launcher `start`s
one command (`ProcessSpec`) and hands back a `RunningProcess` whose output MTT reads as the task's log (`read`),
whose end it waits for (`wait`), and which it stops on cancel or timeout (`kill`: graceful first, then by force).

MTT picks the backend by `MLIFE_MTT_RUNNER_BACKEND` (default `bwrap`, the bubblewrap sandbox) or a task's
`params.runner`. Built-ins: `bwrap`, `docker` (an engine's container), `subprocess` (no sandbox: refuses unless
the operator opted out with `MLIFE_MTT_ALLOW_UNSANDBOXED=true`). The runner keeps its wall-clock timeout, the
cancel flag and the log; a backend owns isolation and the resource limits in `RunnerConfig.limits`.

The attempt's work dir (`ProcessSpec.workdir`) holds `code/` (the cwd), `out/` (what the runner collects),
`home/`, and the read-only inputs `data/` and `model/`. A launcher with `workdir_inside` set shows that folder at
that path inside its sandbox (MTT writes the command's environment with those paths); None: at its real path.

    import asyncio
    from mlife_shared.plugins.seams.runners import Launcher, ProcessSpec, RunnerConfig, RunningProcess

    class _Proc:
        def __init__(self, proc): self.proc = proc
        async def read(self): return await self.proc.stdout.read(65536)
        async def wait(self): return await self.proc.wait()
        def exited(self): return self.proc.returncode
        async def kill(self): self.proc.kill(); await self.proc.wait()
        async def cleanup(self): pass

    class _Launcher:
        workdir_inside = None
        notice = "runs on the ssh host build-7"
        async def start(self, spec: ProcessSpec) -> RunningProcess:
            proc = await asyncio.create_subprocess_exec("ssh", "build-7", *spec.argv, stdout=-1, stderr=-2)
            return _Proc(proc)

    class SshRunner:
        name, api, description = "ssh", ">=1,<2", "task commands on a build host over ssh"
        def unavailable(self, config: RunnerConfig) -> str | None:
            return None if shutil.which("ssh") else "ssh is not installed"
        def prepare(self, config: RunnerConfig) -> Launcher:
            return _Launcher()

registered in its package's pyproject.toml as `[project.entry-points."mlife.runners"] ssh = "my_pkg:SshRunner"`.
A launcher that cannot run a command raises `RunnerUnavailable(reason)`: the run fails with that reason."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable


class RunnerUnavailable(Exception):  # noqa: N818 - the reason a run cannot start, shown as the task's error
    """This backend cannot run task code here (a missing tool, no engine, not allowed): the run fails with it."""


@dataclass(frozen=True)
class Limits:
    """Per task process: address space (MiB), CPU seconds, processes + threads, largest file (MiB), CPUs."""

    memory_mb: int = 8192
    cpu_seconds: int = 6 * 3600
    processes: int = 512
    file_mb: int = 8192
    cpus: float = 2.0


@dataclass(frozen=True)
class RunnerConfig:
    """The operator's settings a backend runs with (from `MLIFE_MTT_SANDBOX_*` and friends). `options` holds the
    built-ins' own settings (`bwrap_path`, `docker_image`); an outside backend reads its own from its own
    environment variables."""

    limits: Limits = field(default_factory=Limits)
    network: Literal["none", "host"] = "none"
    task_uid: int = 65534  # uid/gid of task code in runner slot 0 (never 0)
    slot_uid_base: int = 100000  # runner slot k > 0 runs task code as slot_uid_base + k
    sdk_dir: Path | None = None  # the `mlife` task SDK package, to be importable inside (read-only)
    ro_paths: tuple[Path, ...] = ()  # extra host folders to show read-only (a conda env)
    allow_unsandboxed: bool = False  # the operator's explicit opt-out of any sandbox
    options: dict[str, Any] = field(default_factory=dict)

    def uid_for_slot(self, slot: int) -> int:
        return self.task_uid if slot == 0 else self.slot_uid_base + slot


@dataclass
class ProcessSpec:
    """One command: argv run in `cwd` (inside `workdir`) with exactly `env` (MTT's allow-list, nothing else)."""

    task_id: str
    argv: list[str]
    workdir: Path
    cwd: Path
    env: dict[str, str]
    kill_grace_seconds: float = 5.0
    labels: dict[str, str] = field(default_factory=dict)
    slot: int = 0  # the runner slot: a sandbox gives each slot its own uid


class RunningProcess(Protocol):
    async def read(self) -> bytes:
        """Next chunk of the merged stdout/stderr (the task's log); b"" at the end."""

    async def wait(self) -> int:
        """The exit code, once the command and its output ended."""

    def exited(self) -> int | None:
        """The exit code once the command itself ended (its children may live on), else None."""

    async def kill(self) -> None:
        """Cancel: stop the whole process tree (graceful first, then by force after kill_grace_seconds)."""

    async def cleanup(self) -> None:
        """After the end: nothing of the command left running, its resources released."""


class Launcher(Protocol):
    workdir_inside: str | None  # where the command sees the work dir (None: at its real path, unsandboxed)
    notice: str | None  # a line for every task log (e.g. an unsandboxed backend's warning)

    async def start(self, spec: ProcessSpec) -> RunningProcess: ...


@runtime_checkable
class RunnerBackend(Protocol):
    name: str
    api: str
    description: str

    def unavailable(self, config: RunnerConfig) -> str | None:
        """Why this backend cannot run task code on this machine with this config (None: it can)."""

    def prepare(self, config: RunnerConfig) -> Launcher:
        """A launcher for this runner process (called once per runner; cheap, no command run yet)."""


PROTOCOL = RunnerBackend

_HELLO = "print('mlife-conformance', flush=True)"
_HOLD = "import time\nprint('holding', flush=True)\ntime.sleep(120)"


def _spec(work: Path, name: str, code: str) -> ProcessSpec:
    for sub in ("code", "out", "home", "data"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    inside_env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    return ProcessSpec(task_id=f"conformance-{name}", argv=["python", "-c", code], workdir=work, cwd=work / "code",
                       env=inside_env, kill_grace_seconds=1.0)


async def _read_until(proc: RunningProcess, marker: bytes) -> bytes:
    out = b""
    while marker not in out and (chunk := await proc.read()):
        out += chunk
    return out


async def _exercise(launcher: Launcher, work: Path) -> None:
    proc = await launcher.start(_spec(work / "hello", "hello", _HELLO))
    out = await _read_until(proc, b"\0")  # everything up to the end
    code = await proc.wait()
    await proc.cleanup()
    assert code == 0, f"a command that succeeds should end with exit code 0, not {code}; its output: {out[-500:]!r}"
    assert b"mlife-conformance" in out, f"the command's output should be readable as its log; got {out[-500:]!r}"
    proc = await launcher.start(_spec(work / "hold", "hold", _HOLD))
    out = await _read_until(proc, b"holding")
    assert b"holding" in out, f"a running command's output should be readable while it runs; got {out[-500:]!r}"
    assert proc.exited() is None, "exited() should be None while the command runs"
    await proc.kill()
    code = await proc.wait()
    await proc.cleanup()
    assert code != 0, "a killed command should not end with exit code 0"


def conformance(plugin: Any) -> None:
    """`prepare` gives a launcher (workdir_inside and notice are str or None); where the backend is available here,
    a command's output is its log and exit code 0, and `kill` stops a command that would run for minutes."""
    config = RunnerConfig(limits=Limits(memory_mb=1024, cpu_seconds=60, processes=64, file_mb=16),
                          allow_unsandboxed=True)
    why = plugin.unavailable(config)
    assert why is None or (isinstance(why, str) and why), "unavailable() should be None or a non-empty reason"
    launcher = plugin.prepare(config)
    for attr in ("workdir_inside", "notice"):
        value = getattr(launcher, attr, 0)
        assert value is None or isinstance(value, str), f"the launcher's {attr} should be a str or None"
    assert callable(getattr(launcher, "start", None)), "the launcher should have start(spec)"
    if why is not None:
        return  # not runnable on this machine (no engine, no tool): the shape is all that can be checked
    with tempfile.TemporaryDirectory(prefix="mlife-runner-conformance-") as tmp:
        Path(tmp).chmod(0o755)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_exercise(launcher, Path(tmp)))
            return
        with ThreadPoolExecutor(1) as pool:  # called from async code: its own loop in a thread
            pool.submit(asyncio.run, _exercise(launcher, Path(tmp))).result()
