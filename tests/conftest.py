"""Real servers for the tests: PostgreSQL, NATS JetStream and S3 come from `scripts/testenv.py`
(started by `make test` when they are not already running); their addresses arrive in MLIFE_TEST_*.
The harness itself is `tests.support`; this file gives the fixtures every suite shares."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.support.nats import NATS_URL, worker_nats
from tests.support.postgres import PG_HOST, PG_PORT, PG_USER, create_database, drop_databases, drop_templates, pg_url
from tests.support.processes import free_port, stop
from tests.support.stack import Stack, start_stack, stop_stack

# Every database engine of the tests keeps one idle connection (bursts still open up to 10 more, closed on return):
# the in-process apps and the processes of the stack and of the e2e platform, which inherit this environment. At
# the services' default of 10, two pytest-xdist workers (each with its own stack) exhausted PostgreSQL's 100.
os.environ.setdefault("MLIFE_DATABASE_POOL_SIZE", "1")

__all__ = ["NATS_URL", "PG_HOST", "PG_PORT", "PG_USER", "free_port", "pg_url"]  # importable from here as before


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test environment's NATS; under pytest-xdist a server of the worker's own (see worker_nats)."""
    server = worker_nats(tmp_path_factory.mktemp("nats"))
    if server is None:
        yield NATS_URL
        return
    try:
        yield server.url
    finally:
        stop([server.proc])


@pytest.fixture
async def make_database() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """A fresh PostgreSQL database migrated with a service's migrations (`make_database("bam.migrations")`
    returns its URL): a clone of the session's template for those migrations; dropped after the test."""
    created: list[str] = []

    async def _make(migrations: str) -> str:
        name = await create_database(migrations)
        created.append(name)
        return pg_url(name)

    yield _make
    await drop_databases(created)


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Every service with an API and the gateway, as processes: one platform for the session, started by the
    first test that asks for it (gateway, UI, CLI and security suites) and stopped at the end."""
    platform = await start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield platform
    finally:
        await stop_stack(platform)


# Under pytest-xdist with `--dist loadgroup` (make test), the tests that use one of these session platforms run on
# one worker, which starts it once; the other worker runs the rest. `dam_s3`: DAM on the shared test bucket, whose
# tests assert that no temporary upload is left under `incoming/` — beside each other, one's uploads in flight were
# the other's leftovers (a fresh-clone CI run failed so).
XDIST_GROUPS = {"stack": "stack", "distributed": "e2e", "labelstudio": "labelstudio", "mlflow_server": "mlflow",
                "dam_s3": "dam-s3"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        group = next((g for fixture, g in XDIST_GROUPS.items() if fixture in fixtures), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


class _GroupSuffix:
    """pytest-xdist 3.8 marks a grouped test by appending `@<group>` to `item._nodeid`, which pytest 9.2 no longer
    reads (a node's id is `item._id` now): every group was silently spread over both workers, each starting its own
    session platform (two stacks, two e2e platforms, two clusters). This does the same renaming on `_id`, after
    xdist's own hook; it does nothing where xdist's renaming took (an older pytest) or without `--dist loadgroup`."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not config.getvalue("loadgroup"):
            return
        from _pytest.nodeid import NodeId  # pytest >= 9.2 only: where the id lives

        for item in items:
            groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                             for m in item.iter_markers("xdist_group")})
            if groups and "@" not in item.nodeid:
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        config.pluginmanager.register(_GroupSuffix(), "mlife-xdist-group-suffix")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's template databases go when it ends."""
    try:
        asyncio.run(drop_templates())
    except Exception as exc:  # noqa: BLE001 - the next run on this host drops what is left (see tests.support.postgres)
        print(f"\ncould not drop the template databases: {exc}")
