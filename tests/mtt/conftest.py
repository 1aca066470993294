"""MTT on real PostgreSQL, NATS JetStream, S3 and a real `mlflow server` (3.17.2, from `.venv-mlflow`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.app import create_app
from mtt.app import SPEC
from mtt.config import Settings
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
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1, SQLite backend, artifacts proxied; stopped at the end."""
    mlflow = ROOT / ".venv-mlflow" / "bin" / "mlflow"
    if not mlflow.exists():
        subprocess.run([str(ROOT / "services" / "mtt" / "scripts" / "mlflow-venv.sh")], check=True)
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, **QUIET}
    logf = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            log = (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start: " + log
            time.sleep(0.5)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        logf.close()


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
    app = create_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mtt/api/mtt",
                                     headers=as_role("engineer", "erin"), timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
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
