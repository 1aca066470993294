"""Login limits that cannot lock the admin out, and user names that ignore case (issue 13, deliverable 4).

The gateway runs as `python -m gateway api` (its real uvicorn configuration: the X-Forwarded-For finding
lived there) with small limits and one trusted proxy, 127.0.0.2: a client bound to that address plays the
reverse proxy, one bound to 127.0.0.1 (or .3) plays a direct client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from mlife_shared.migrations import upgrade
from tests.support.platform import service_process
from tests.support.postgres import create_database, drop_databases, pg_url

ADMIN_TOKEN = "mlf_login_admin_" + uuid.uuid4().hex
ADMIN_PASSWORD = "login-admin-" + uuid.uuid4().hex[:12]
PASSWORD = "a long test password"
PER_ACCOUNT = 3
PER_SOURCE = 8
PROXY = "127.0.0.2"


class Gateway:
    def __init__(self, url: str) -> None:
        self.url = url

    def client(self, source: str = "127.0.0.7", **kw: object) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=30, **kw)  # type: ignore[arg-type]

    async def login(self, username: str, password: str, *, source: str = "127.0.0.7",
                    forwarded_for: str | None = None) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        async with self.client(source) as c:
            return await c.post("/api/gateway/login", json={"username": username, "password": password},
                                headers=headers)

    def admin(self) -> httpx.AsyncClient:
        return self.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> AsyncIterator[Gateway]:
    async with service_process(tmp_path_factory.mktemp("login-gateway"), "gateway", argv=("--migrate",),
                               nats_url=nats_url, secret="login-" + uuid.uuid4().hex,
                               MLIFE_GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN, MLIFE_GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
                               MLIFE_GATEWAY_ALLOWED_HOSTS='["127.0.0.1"]', MLIFE_GATEWAY_SESSION_COOKIE_SECURE="false",
                               MLIFE_GATEWAY_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(PER_ACCOUNT),
                               MLIFE_GATEWAY_LOGIN_MAX_FAILURES_PER_IP=str(PER_SOURCE),
                               MLIFE_GATEWAY_TRUSTED_PROXIES=f'["{PROXY}/32"]') as service:
        yield Gateway(service.url)


async def _user(gw: Gateway, username: str, role: str = "viewer") -> dict:
    async with gw.admin() as c:
        r = await c.post("/api/gateway/users", json={"username": username, "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


# --- per account + source ---------------------------------------------------------------------------------

async def test_an_attacker_cannot_lock_the_admin_out(gateway: Gateway) -> None:
    attacker = "198.51.100.66"  # behind the trusted proxy: the source is the forwarded address
    for _ in range(PER_ACCOUNT):
        r = await gateway.login("admin", "wrong password", source=PROXY, forwarded_for=attacker)
        assert r.status_code == 401
    refused = await gateway.login("admin", ADMIN_PASSWORD, source=PROXY, forwarded_for=attacker)
    assert refused.status_code == 429 and "from your address" in refused.json()["detail"]
    assert "Retry-After" in refused.headers
    # the admin, from their own address (direct or through the same proxy), logs in at once
    assert (await gateway.login("admin", ADMIN_PASSWORD, source="127.0.0.3")).status_code == 200
    assert (await gateway.login("Admin", ADMIN_PASSWORD, source=PROXY, forwarded_for="203.0.113.9")).status_code == 200
    # ... and that success does not lift the attacker's limit
    again = await gateway.login("admin", ADMIN_PASSWORD, source=PROXY, forwarded_for=attacker)
    assert again.status_code == 429


async def test_the_per_account_limit_counts_the_name_in_any_case(gateway: Gateway) -> None:
    await _user(gateway, "Casey-limit")
    source = "198.51.100.20"
    for name in ("casey-limit", "CASEY-LIMIT", "Casey-Limit"):
        assert (await gateway.login(name, "wrong", source=PROXY, forwarded_for=source)).status_code == 401
    assert (await gateway.login("casey-limit", PASSWORD, source=PROXY, forwarded_for=source)).status_code == 429


async def test_a_maintainer_unlocks_an_account(gateway: Gateway) -> None:
    user = await _user(gateway, "locked-out")
    source = "198.51.100.30"
    for _ in range(PER_ACCOUNT):
        await gateway.login("locked-out", "wrong", source=PROXY, forwarded_for=source)
    assert (await gateway.login("locked-out", PASSWORD, source=PROXY, forwarded_for=source)).status_code == 429
    viewer = await _user(gateway, "not-a-maintainer")
    async with gateway.client() as c:
        csrf = (await c.post("/api/gateway/login", json={"username": "not-a-maintainer",
                                                         "password": PASSWORD})).json()["csrf_token"]
        denied = await c.post(f"/api/gateway/users/{user['id']}/unlock", headers={"X-CSRF-Token": csrf})
        assert denied.status_code == 403
    assert viewer["role"] == "viewer"
    async with gateway.admin() as c:
        assert (await c.post(f"/api/gateway/users/{uuid.uuid4()}/unlock")).status_code == 404
        r = await c.post(f"/api/gateway/users/{user['id']}/unlock")
        assert r.status_code == 200 and r.json() == {"cleared_failures": PER_ACCOUNT}
    assert (await gateway.login("locked-out", PASSWORD, source=PROXY, forwarded_for=source)).status_code == 200


# --- X-Forwarded-For --------------------------------------------------------------------------------------

async def test_x_forwarded_for_from_a_direct_client_is_ignored(gateway: Gateway) -> None:
    """A client that is no trusted proxy cannot pick a fresh address per attempt: every failure counts
    against its own address, whatever X-Forwarded-For it sends. 127.0.0.1 is the case that mattered:
    uvicorn believes X-Forwarded-For from there unless told not to."""
    source = "127.0.0.1"
    for i in range(PER_SOURCE):
        r = await gateway.login(f"nobody-{i}", "wrong", source=source, forwarded_for=f"192.0.2.{i + 1}")
        assert r.status_code == 401, r.text
    fresh = await gateway.login("nobody-else", "wrong", source=source, forwarded_for="192.0.2.200")
    assert fresh.status_code == 429 and "from your address" in fresh.json()["detail"]
    # another direct client is not affected
    assert (await gateway.login("nobody-else", "wrong", source="127.0.0.5")).status_code == 401


async def test_behind_the_trusted_proxy_each_client_counts_apart(gateway: Gateway) -> None:
    for i in range(PER_SOURCE):
        assert (await gateway.login(f"ghost-{i}", "wrong", source=PROXY,
                                    forwarded_for="192.0.2.50")).status_code == 401
    assert (await gateway.login("ghost-x", "wrong", source=PROXY, forwarded_for="192.0.2.50")).status_code == 429
    # a client-written entry left of the proxy's own is not believed: the right-most untrusted one counts
    spoofed = await gateway.login("ghost-x", "wrong", source=PROXY, forwarded_for="10.9.9.9, 192.0.2.50")
    assert spoofed.status_code == 429
    assert (await gateway.login("ghost-x", "wrong", source=PROXY, forwarded_for="192.0.2.51")).status_code == 401


# --- case-insensitive user names --------------------------------------------------------------------------

async def test_user_names_are_unique_regardless_of_case(gateway: Gateway) -> None:
    created = await _user(gateway, "Morgan")
    async with gateway.admin() as c:
        for name in ("morgan", "MORGAN", "Morgan"):
            r = await c.post("/api/gateway/users", json={"username": name, "password": PASSWORD, "role": "viewer"})
            assert r.status_code == 409 and r.json()["error"] == "UsernameTaken", r.text
            assert "'Morgan'" in r.json()["detail"]
        clash = await c.post("/api/gateway/users", json={"username": "ADMIN", "password": PASSWORD,
                                                          "role": "maintainer"})
        assert clash.status_code == 409
        # concurrent creates of one name in two cases: one wins, the other is a 409, never a 500
        racing = await asyncio.gather(*(c.post("/api/gateway/users", json={"username": n, "password": PASSWORD})
                                        for n in ("RaceName", "racename", "RACENAME")))
        assert sorted(r.status_code for r in racing) == [201, 409, 409], [r.text for r in racing]
    login = await gateway.login("mOrGaN", PASSWORD)
    assert login.status_code == 200 and login.json()["username"] == "Morgan"  # shown as created
    assert login.json()["id"] == created["id"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_the_migration_stops_on_case_duplicates_and_names_them(dialect: str, tmp_path: Path) -> None:
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    else:
        name = await create_database(prefix="mlife_login_mig")
        url = pg_url(name)
    try:
        await asyncio.to_thread(upgrade, "gateway.migrations", url, "gateway_0002")
        engine = create_async_engine(url)
        insert = sa.text('INSERT INTO "user" (id, username, role, created_at) VALUES (:id, :name, \'viewer\', '
                         'CURRENT_TIMESTAMP)')
        async with engine.begin() as conn:
            for n in ("Admin2", "admin2", "ADMIN2", "dana", "Dana", "erin"):
                await conn.execute(insert, {"id": uuid.uuid4().hex if dialect == "sqlite" else uuid.uuid4(),
                                            "name": n})
        with pytest.raises(Exception) as failed:
            await asyncio.to_thread(upgrade, "gateway.migrations", url)
        message = str(failed.value)
        assert "differ only in case" in message
        assert "'ADMIN2' = 'Admin2' = 'admin2'" in message and "'Dana' = 'dana'" in message and "erin" not in message
        async with engine.begin() as conn:  # nothing changed: still at 0002, and a maintainer decides
            assert (await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))) == "gateway_0002"
            await conn.execute(sa.text("DELETE FROM \"user\" WHERE username IN ('admin2', 'ADMIN2', 'dana')"))
        await asyncio.to_thread(upgrade, "gateway.migrations", url)
        async with engine.begin() as conn:
            assert (await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))) != "gateway_0002"
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert, {"id": uuid.uuid4().hex if dialect == "sqlite" else uuid.uuid4(),
                                            "name": "ERIN"})
        await engine.dispose()
    finally:
        if dialect == "postgresql":
            await drop_databases([name])
