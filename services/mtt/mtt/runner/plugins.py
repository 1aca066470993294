"""The built-in runner backends as plugins of the runners seam (registered in MTT's pyproject.toml under
`mlife.runners`, found as an outside one would be), and how a runner picks one: a task's `params.runner`, else
`MLIFE_MTT_RUNNER_BACKEND` (default `bwrap`). The legacy `MLIFE_MTT_SANDBOX=none` turns `bwrap` into
`unsandboxed`, which refuses to run anything unless the operator opted out (`MLIFE_MTT_ALLOW_UNSANDBOXED=true`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import structlog

from mlife_shared.plugins.registry import PluginUnavailable, plugins
from mlife_shared.plugins.seams.runners import Launcher, Limits, RunnerConfig
from mtt.config import Settings
from mtt.runner.backends import DockerBackend, RefusingBackend, SubprocessBackend
from mtt.runner.sandbox import BwrapBackend, find_binary, missing_bwrap

log = structlog.get_logger(__name__)
API = ">=1,<2"
DEFAULT = "bwrap"
UNSANDBOXED_REFUSED = ("the unsandboxed runner backend (or MLIFE_MTT_SANDBOX=none) runs task code without a sandbox, "
                       "which needs the operator's explicit opt-out MLIFE_MTT_ALLOW_UNSANDBOXED=true; or use the "
                       "bwrap backend (install bubblewrap) or docker")


def _sdk_dir() -> Path:
    """The task SDK mounted into sandboxes: the installed `mlife` package (a wheel, or the checkout's editable
    install), else <venv>/lib/mlife, where the MTT image copies it (deploy/Dockerfile.service)."""
    spec = importlib.util.find_spec("mlife")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(sys.prefix) / "lib" / "mlife"


SDK_DIR = _sdk_dir()


class BwrapRunner:
    name = "bwrap"
    api = API
    description = ("bubblewrap sandbox (the default): its own mount, pid and network namespaces, an unprivileged uid "
                   "per runner slot, rlimits; sees only the attempt's work dir")

    def unavailable(self, config: RunnerConfig) -> str | None:
        path = str(config.options.get("bwrap_path", "bwrap"))
        return None if find_binary(path) is not None else missing_bwrap(path)

    def prepare(self, config: RunnerConfig) -> Launcher:
        return BwrapBackend(str(config.options.get("bwrap_path", "bwrap")), network=config.network,
                            uid_for_slot=config.uid_for_slot, limits=config.limits, ro_paths=list(config.ro_paths),
                            sdk_dir=config.sdk_dir)


class DockerRunner:
    name = "docker"
    api = API
    description = ("a container per run through the docker SDK (MLIFE_MTT_DOCKER_IMAGE): read-only root, no "
                   "capabilities, no network, the sandbox's uid and limits")

    def unavailable(self, config: RunnerConfig) -> str | None:
        try:
            import docker

            docker.from_env(timeout=5).ping()
        except Exception as exc:  # noqa: BLE001 - whatever stops the SDK from reaching an engine is the reason
            return f"no Docker engine reachable from this runner ({type(exc).__name__}: {str(exc)[:200]})"
        return None

    def prepare(self, config: RunnerConfig) -> Launcher:
        return DockerBackend(str(config.options.get("docker_image", "python:3.11-slim")), sdk_dir=config.sdk_dir,
                             user=f"{config.task_uid}:{config.task_uid}", network=config.network,
                             limits=config.limits)


class UnsandboxedRunner:
    name = "unsandboxed"
    api = API
    description = ("no sandbox: the command runs as the runner's user; refuses every run unless the operator "
                   "opted out with MLIFE_MTT_ALLOW_UNSANDBOXED=true")

    def unavailable(self, config: RunnerConfig) -> str | None:
        return None if config.allow_unsandboxed else UNSANDBOXED_REFUSED

    def prepare(self, config: RunnerConfig) -> Launcher:
        if not config.allow_unsandboxed:
            return RefusingBackend(UNSANDBOXED_REFUSED)
        log.warning("runner_unsandboxed", hint="task code runs as the runner's user: use the bwrap backend")
        return SubprocessBackend()


def runner_config(s: Settings) -> RunnerConfig:
    """The runner's settings as the runners seam speaks them."""
    return RunnerConfig(
        limits=Limits(memory_mb=s.sandbox_memory_mb, cpu_seconds=s.sandbox_cpu_seconds,
                      processes=s.sandbox_max_processes, file_mb=s.sandbox_max_file_mb, cpus=s.docker_cpus),
        network=s.sandbox_network, task_uid=s.sandbox_uid, slot_uid_base=s.sandbox_slot_uid_base,
        sdk_dir=SDK_DIR if SDK_DIR.is_dir() else None, ro_paths=tuple(s.sandbox_ro_paths),
        allow_unsandboxed=s.allow_unsandboxed, options={"bwrap_path": s.bwrap_path, "docker_image": s.docker_image})


def backend_name(settings: Settings, requested: str | None = None) -> str:
    """The backend a run uses: the task's choice, else the setting; `subprocess` (the old default's name) means the
    local sandbox, and MLIFE_MTT_SANDBOX=none turns that into `unsandboxed`."""
    name = requested or settings.runner_backend
    if name == "subprocess":
        name = DEFAULT
    return "unsandboxed" if name == DEFAULT and settings.sandbox == "none" else name


def requested_backend(params: dict[str, Any]) -> str | None:
    """A task's `params.runner`: a backend name, or None (the runner's setting)."""
    value = params.get("runner")
    return value if isinstance(value, str) and value else None


def check_requested(params: dict[str, Any]) -> None:
    """A task naming a backend this MTT does not have active: 422 (PluginUnavailable) listing the active ones."""
    if "runner" in params and not isinstance(params["runner"], str | None):
        raise PluginUnavailable("params.runner names a runner backend: a string such as 'bwrap' or 'docker'")
    if (name := requested_backend(params)) is not None and name not in ("subprocess",):
        plugins("runners").get("runners", name)


def make_backend(settings: Settings, requested: str | None = None) -> Launcher:
    """The launcher of the named (or configured) backend; a backend this runner does not have active gives a
    launcher that fails every run with the reason (the runner keeps taking other tasks)."""
    name = backend_name(settings, requested)
    try:
        plugin = plugins("runners").get("runners", name)
    except PluginUnavailable as exc:
        log.error("runner_backend_unavailable", backend=name, reason=exc.message)
        return RefusingBackend(f"this runner cannot run task code: {exc.message}")
    launcher: Launcher = plugin.prepare(runner_config(settings))
    return launcher
