"""MTT on real PostgreSQL, NATS JetStream, S3 and a real `mlflow server` (3.17.2, from `.venv-mlflow`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity
from mlife_shared.db import Database
from mlife_shared.messaging.models import OutboxEvent
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.app import SPEC
from mtt.config import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "mtt-test-secret-" + uuid.uuid4().hex
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
         "ORT_DISABLE_TELEMETRY": "1", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false"}
os.environ.update(QUIET)


def as_role(role: Role, name: str | None = None) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), SECRET, ttl_seconds=3600)}


def s3_settings() -> dict[str, object]:
    endpoint = os.environ.get("MLIFE_TEST_S3_ENDPOINT")
    assert endpoint, "MLIFE_TEST_S3_* is not set: run the tests through scripts/testenv.py"
    return dict(object_store="s3", s3_endpoint=endpoint, s3_access_key=os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
                s3_secret_key=os.environ["MLIFE_TEST_S3_SECRET_KEY"],
                s3_bucket=os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test"))


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


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 180.0) -> Any:
    """Poll until `check()` is truthy (the timeout only bounds a failing test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def task_in(client: httpx.AsyncClient, task_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = (await client.get(f"/tasks/{task_id}")).json()
        return body if body["status"] in statuses else None

    return await wait_for(check, f"task {task_id} in {statuses}")


async def outbox_events(settings: Settings, subject: str | None = None) -> list[dict[str, Any]]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            rows = (await session.execute(select(OutboxEvent).order_by(OutboxEvent.seq))).scalars().all()
            return [r.envelope if isinstance(r.envelope, dict) else json.loads(r.envelope) for r in rows
                    if subject is None or r.subject == subject]
    finally:
        await db.dispose()


async def put_dataset(settings: Settings, items: list[tuple[bytes, str]], *,
                      badcase_ids: list[str | None] | None = None) -> tuple[str, str]:
    """What DAM does for "group items": each file under dam/files/<md5>, a JSON-lines manifest. → (dataset id, key)"""
    store = make_store(settings)
    ds = str(uuid.uuid4())
    lines = []
    for i, (data, label) in enumerate(items):
        md5 = hashlib.md5(data).hexdigest()
        await store.put(f"dam/files/{md5}", iterate(data))
        extra = {"badcase_id": badcase_ids[i]} if badcase_ids and badcase_ids[i] else {}
        lines.append({"md5": md5, "key": f"dam/files/{md5}", "path": f"{md5}.png", "annotation": None,
                      "label": label, "extra": extra, "media_type": "image"})
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await store.put(key, iterate("".join(json.dumps(x) + "\n" for x in lines).encode()))
    return ds, key


def digits(limit: int | None = None) -> list[tuple[bytes, str]]:
    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    try:
        from make_dataset import digits_pngs
    finally:
        sys.path.pop(0)
    return digits_pngs(limit)
