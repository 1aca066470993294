"""Where a task's command runs: a local subprocess in its own process group, or a Docker container
(written against the docker SDK: `docker.from_env()`, `containers.run`, `logs`, `wait`, `kill`, `remove`)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass
class ProcessSpec:
    task_id: str
    argv: list[str]
    workdir: Path
    cwd: Path
    env: dict[str, str]
    kill_grace_seconds: float = 5.0
    labels: dict[str, str] = field(default_factory=dict)


class RunningProcess(Protocol):
    async def read(self) -> bytes:
        """Next chunk of the merged stdout/stderr; b"" at the end."""

    async def wait(self) -> int: ...

    def exited(self) -> int | None:
        """The exit code once the command itself ended (its children may live on), else None."""

    async def kill(self) -> None:
        """Stop the whole process tree (graceful first, then by force)."""

    async def cleanup(self) -> None: ...


class Backend(Protocol):
    name: str

    async def start(self, spec: ProcessSpec) -> RunningProcess: ...


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
        except asyncio.TimeoutError:
            pass
        self._signal(signal.SIGKILL)
        await self.proc.wait()

    async def cleanup(self) -> None:
        self._signal(signal.SIGKILL)  # children left behind by a command that exited


class SubprocessBackend:
    name = "subprocess"

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv, cwd=str(spec.cwd), env=spec.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return _Subprocess(proc, spec.kill_grace_seconds)


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
    """The work dir is bind-mounted at /mlife/work, the SDK (mlife/tracking.py) at /mlife/sdk; paths in
    the environment are rewritten to the container's."""

    name = "docker"

    def __init__(self, image: str, client_factory: Callable[[], Any] | None = None,
                 sdk_dir: Path | None = None) -> None:
        self.image = image
        self.client_factory = client_factory
        self.sdk_dir = sdk_dir
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
        host = str(spec.workdir)
        env = {k: v.replace(host, CONTAINER_WORKDIR) for k, v in spec.env.items()
               if k not in ("PATH", "PYTHONPATH", "HOME")}
        volumes = {host: {"bind": CONTAINER_WORKDIR, "mode": "rw"}}
        if self.sdk_dir is not None:
            volumes[str(self.sdk_dir)] = {"bind": f"{CONTAINER_SDK}/mlife", "mode": "ro"}
            env["PYTHONPATH"] = CONTAINER_SDK
        cwd = str(spec.cwd).replace(host, CONTAINER_WORKDIR)
        container = await asyncio.to_thread(
            self.client().containers.run, self.image, spec.argv, detach=True, working_dir=cwd, environment=env,
            volumes=volumes, labels={"mlife.task_id": spec.task_id, **spec.labels}, init=True)
        return _Container(container, spec.kill_grace_seconds)
