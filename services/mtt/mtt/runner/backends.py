"""Where a task's command runs: a bubblewrap sandbox (sandbox.py, the default), a Docker container (written
against the docker SDK: `docker.from_env()`, `containers.run`, `logs`, `wait`, `kill`, `remove`), or — only with
an operator's explicit opt-out — a plain local subprocess in its own process group.

The attempt's work dir holds `code/` (the command's cwd), `out/` (what the runner collects), `home/`, and the
read-only inputs `data/` and `model/`; a sandboxed backend shows them at `workdir_inside` (the environment the
runner builds uses those paths) and nothing else of the runner's machine."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from mlife_shared.plugins.seams.runners import Launcher, Limits, ProcessSpec, RunnerUnavailable, RunningProcess

__all__ = ["Backend", "ContainerLimits", "DockerBackend", "Limits", "ProcessSpec", "RefusingBackend", "RunningProcess",
           "SubprocessBackend"]


# the runners seam's value types (mlife_shared.plugins.seams.runners): a launcher is what a backend prepared
Backend = Launcher
ContainerLimits = Limits


class _Subprocess:
    def __init__(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        self.proc = proc
        self.grace = grace

    async def read(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.read(65536)

    async def wait(self) -> int:
        return await self.proc.wait()  # asyncio returns once the pipes closed too

    def exited(self) -> int | None:
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group: the command and everything it started

    async def kill(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), self.grace)
        except TimeoutError:
            pass
        self._signal(signal.SIGKILL)
        await self.proc.wait()

    async def cleanup(self) -> None:
        self._signal(signal.SIGKILL)  # children left behind by a command that exited


class SubprocessBackend:
    """No sandbox: the command runs as the runner's user and sees the runner's machine. Only with an explicit
    operator opt-out (`MLIFE_MTT_ALLOW_UNSANDBOXED=true`, with the `unsandboxed` backend or MLIFE_MTT_SANDBOX=none)."""

    name = "unsandboxed"
    workdir_inside: str | None = None
    notice: str | None = ("WARNING: no sandbox (the unsandboxed runner backend, MLIFE_MTT_ALLOW_UNSANDBOXED=true): "
                          "this command runs as the runner's user and can read what the runner can read")

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv, cwd=str(spec.cwd), env=spec.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return _Subprocess(proc, spec.kill_grace_seconds)


class RefusingBackend:
    """A runner that may not run user code (no sandbox, no opt-out): every command fails with the reason."""

    name = "refused"
    workdir_inside: str | None = None
    notice: str | None = None

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        raise RunnerUnavailable(self.reason)


CONTAINER_WORKDIR = "/mlife/work"
CONTAINER_SDK = "/mlife/sdk"


class _Container:
    def __init__(self, container: Any, grace: float) -> None:
        self.container = container
        self.grace = grace
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                    loop.call_soon_threadsafe(self.chunks.put_nowait, bytes(chunk))
            finally:
                loop.call_soon_threadsafe(self.chunks.put_nowait, b"")

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    async def read(self) -> bytes:
        return await self.chunks.get()

    def exited(self) -> int | None:
        return None  # `wait()` returns when the container ends

    async def wait(self) -> int:
        result = await asyncio.to_thread(self.container.wait)
        return int(result.get("StatusCode", -1)) if isinstance(result, dict) else int(result)

    async def kill(self) -> None:
        with suppress(Exception):
            await asyncio.to_thread(self.container.stop, timeout=int(self.grace))
        with suppress(Exception):
            await asyncio.to_thread(self.container.kill)

    async def cleanup(self) -> None:
        with suppress(Exception):
            await asyncio.to_thread(self.container.remove, force=True)


class DockerBackend:
    """The attempt's folders are bind-mounted under /mlife/work (inputs read-only), the SDK (mlife/) read-only
    at /mlife/sdk; the container runs as an unprivileged user with a read-only root, tmpfs /tmp, no capabilities,
    no-new-privileges, no network (unless `network="host"`: the engine's default bridge) and resource limits."""

    name = "docker"
    workdir_inside: str | None = CONTAINER_WORKDIR
    notice: str | None = None

    def __init__(self, image: str, client_factory: Callable[[], Any] | None = None,
                 sdk_dir: Path | None = None, *, user: str = "65534:65534", network: str = "none",
                 limits: ContainerLimits | None = None) -> None:
        self.image = image
        self.client_factory = client_factory
        self.sdk_dir = sdk_dir
        self.user = user
        self.network = network
        self.limits = limits or ContainerLimits()
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            if self.client_factory is None:
                import docker

                self._client = docker.from_env()
            else:
                self._client = self.client_factory()
        return self._client

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        from mtt.runner.sandbox import WORK_MOUNTS, prepare_workdir

        uid = int(self.user.split(":", 1)[0]) if self.user.split(":", 1)[0].isdigit() else None
        await asyncio.to_thread(prepare_workdir, spec.workdir, uid if os.geteuid() == 0 else None)
        host = str(spec.workdir)
        env = {k: v.replace(host, CONTAINER_WORKDIR) for k, v in spec.env.items() if k not in ("PATH", "PYTHONPATH")}
        volumes = {str(spec.workdir / name): {"bind": f"{CONTAINER_WORKDIR}/{name}", "mode": "rw" if rw else "ro"}
                   for name, rw in WORK_MOUNTS if (spec.workdir / name).is_dir()}
        if self.sdk_dir is not None:
            volumes[str(self.sdk_dir)] = {"bind": f"{CONTAINER_SDK}/mlife", "mode": "ro"}
            env["PYTHONPATH"] = CONTAINER_SDK
        cwd = f"{CONTAINER_WORKDIR}/{spec.cwd.relative_to(spec.workdir).as_posix()}"
        lim, mib = self.limits, 1024 * 1024
        isolation: dict[str, Any] = {
            "user": self.user, "read_only": True, "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777"},
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "mem_limit": f"{lim.memory_mb}m",
            "memswap_limit": f"{lim.memory_mb}m", "nano_cpus": int(lim.cpus * 1e9), "pids_limit": lim.processes,
            "ulimits": [{"name": "cpu", "soft": lim.cpu_seconds, "hard": lim.cpu_seconds},
                        {"name": "fsize", "soft": lim.file_mb * mib, "hard": lim.file_mb * mib},
                        {"name": "core", "soft": 0, "hard": 0}]}
        if self.network == "none":
            isolation["network_mode"] = "none"
        container = await asyncio.to_thread(
            self.client().containers.run, self.image, spec.argv, detach=True, working_dir=cwd, environment=env,
            volumes=volumes, labels={"mlife.task_id": spec.task_id, **spec.labels}, init=True, **isolation)
        return _Container(container, spec.kill_grace_seconds)
