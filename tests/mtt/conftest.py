"""MTT on real PostgreSQL, NATS JetStream, S3 and a real `mlflow server` (3.17.2, from `.venv-mlflow`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtt.app import SPEC
from mtt.config import Settings
from tests.support import processes
from tests.support.apps import asgi_client
from tests.support.auth import SECRET, as_role
from tests.support.mtt import ROOT, deliver, digits, put_dataset, task_in
from tests.support.objects import s3_settings
from tests.support.outbox import outbox_events
from tests.support.processes import free_port
from tests.support.waiting import wait_for

# importable from here as before
__all__ = ["ROOT", "SECRET", "as_role", "deliver", "digits", "outbox_events", "put_dataset", "s3_settings", "task_in",
           "wait_for"]

QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
         "ORT_DISABLE_TELEMETRY": "1", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false"}
os.environ.update(QUIET)


@pytest.fixture(scope="session")
async def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A real `mlflow server` on 127.0.0.1, SQLite backend, artifacts proxied; stopped at the end."""
    mlflow = ROOT / ".venv-mlflow" / "bin" / "mlflow"
    with processes.exclusive("venv-mlflow"):  # pytest-xdist workers: one installs, the other waits
        if not mlflow.exists():
            subprocess.run([str(ROOT / "services" / "mtt" / "scripts" / "mlflow-venv.sh")], check=True)
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    argv = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts")]
    proc = processes.start(folder, "server", argv, {**os.environ, **QUIET}, group=True)  # its web server forks workers
    url = f"http://127.0.0.1:{port}"
    try:
        why = await processes.wait_ready(url, proc, folder / "server.log", 180, path="/health")
        assert why is None, f"mlflow server did not start: {why}"
        yield url
    finally:
        processes.stop([proc], group=True)


@pytest.fixture
async def mtt_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("mtt.migrations")


@pytest.fixture
def settings(mtt_db: str, nats_url: str, tmp_path: Path, mlflow_server: str) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(environment="test", database_url=mtt_db, nats_url=nats_url, identity_secret=SECRET,
                    home=tmp_path, mlflow_tracking_uri=mlflow_server, mlflow_experiment=f"t-{tag}",
                    runs_stream=f"MLIFE_MTT_RUNS_T{tag.upper()}", runs_subject_prefix=f"mtt_t{tag}.run",
                    work_root=tmp_path / "work", poll_seconds=0.2, log_flush_seconds=0.3, kill_grace_seconds=2,
                    code_roots=[tmp_path, ROOT / "examples"], **s3_settings())  # type: ignore[arg-type]


@pytest.fixture
async def mtt(settings: Settings, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """MTT's API on a fresh database, S3 and MLflow, called as an engineer."""
    async with asgi_client(SPEC, settings) as client:
        yield client
    import nats

    nc = await nats.connect(nats_url)
    with suppress(Exception):
        await nc.jetstream().delete_stream(settings.runs_stream)
    await nc.close()


@pytest.fixture
async def start_runner(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """Start runner instances (each as it would run in its own process: own DB pool, NATS connection)."""
    from mtt.runner.runner import Runner

    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def _start(runner_id: str, **kw: Any) -> Runner:
        runner = Runner(settings, runner_id=runner_id, **kw)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        started.append((stop, task))
        runner.stop_event, runner.task = stop, task  # type: ignore[attr-defined]
        return runner

    yield _start
    for stop, _ in started:
        stop.set()
    for _, t in started:
        with suppress(BaseException):
            await asyncio.wait_for(t, 30)
