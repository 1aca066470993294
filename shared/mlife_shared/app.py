"""The service skeleton: every service's API is built here from its ServiceSpec, so BAM, DAM, MTT and
MSM share health, readiness, metrics, errors, sessions and dead-letter routes."""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NATS
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.auth import IDENTITY_HEADER, Role, verify_identity
from mlife_shared.db import Database
from mlife_shared.deadletters import dead_letter_router
from mlife_shared.errors import Forbidden, Unauthorized, install_error_handlers
from mlife_shared.heap import freeze_startup_heap
from mlife_shared.http_limits import RequestBodyGuard
from mlife_shared.jobs import Job
from mlife_shared.logging import configure_logging
from mlife_shared.messaging.bus import connect_with_retry
from mlife_shared.messaging.consumer import Subscription, durable_name
from mlife_shared.messaging.repository import DeadLetterRepository, OutboxRepository
from mlife_shared.metrics import RequestContextMiddleware, ServiceMetrics
from mlife_shared.objectstore import ObjectStore, ScopedStore, make_store
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import plugins
from mlife_shared.plugins.routes import plugin_router, record_seen
from mlife_shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass
class ServiceContext(Generic[SettingsT]):
    """What event handlers and jobs may use besides their session: the service's own settings (typed:
    `ServiceContext[bam.config.Settings]`) and the object store (the whole store, to read objects other
    services name in their events, and the service's own prefix)."""

    settings: SettingsT
    store: ObjectStore
    scoped: ScopedStore


def service_context(spec: ServiceSpec[SettingsT], settings: SettingsT) -> ServiceContext[SettingsT]:
    store = make_store(settings)
    return ServiceContext(settings=settings, store=store, scoped=ScopedStore(store, spec.name))


@dataclass
class ServiceSpec(Generic[SettingsT]):
    """What makes a service: its name, settings, routers, subscriptions and migrations. Its settings class
    types the context its subscriptions and jobs are built with."""

    name: str
    title: str
    description: str
    settings_cls: type[SettingsT]
    migrations: str = field(default="", metadata={"doc": "package holding the service's alembic scripts"})
    routers: Callable[[], list[APIRouter]] = lambda: []
    root_routers: Callable[[], list[APIRouter]] = lambda: []
    subscriptions: Callable[[ServiceContext[SettingsT]], list[Subscription]] = lambda ctx: []
    has_worker: bool = True
    uses_object_store: bool = True
    extra_readiness: Callable[[FastAPI], Awaitable[dict[str, str]]] | None = None
    openapi_url: str = "/openapi.json"
    extra_lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    after_migrate: Callable[[SettingsT], Coroutine[Any, Any, None]] | None = None
    jobs: Callable[[ServiceContext[SettingsT]], list[Job]] = lambda ctx: []  # periodic, run by the worker
    customize: Callable[[FastAPI], None] | None = None  # the service's own additions, once the app is built


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the route returns and before the response is sent. A GET or
    HEAD only reads (`Database.reading`: no BEGIN/COMMIT round trips; a write there is refused)."""
    db = request.app.state.db
    async with (db.reading() if request.scope["method"] in _READS else db.transaction()) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_store(request: Request) -> ScopedStore:
    store: ScopedStore = request.app.state.store
    return store


StoreDep = Annotated[ScopedStore, Depends(get_store)]


def _lifespan(spec: ServiceSpec[Any], settings: ServiceSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's resources: its database, object store and NATS connection (made in the background, so the
    API answers while NATS is down), and the spec's own lifespan inside them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        if spec.uses_object_store:
            store: ObjectStore = make_store(settings)
            app.state.raw_store = store
            app.state.store = ScopedStore(store, spec.name)
        app.state.nats = None
        app.state.plugins = plugins(*seams_of(spec.name))
        if app.state.plugins.seams:
            try:  # remembered, so that one whose package is removed is listed as absent
                await record_seen(app.state.plugins.states, app.state.db)
            except Exception as exc:  # noqa: BLE001 - the database may be down at start; the listing still works
                log.warning("plugins.not_recorded", error=str(exc))
        stop = asyncio.Event()

        async def _connect() -> None:
            app.state.nats = await connect_with_retry(settings.nats_url, name=f"{spec.name}-api", stop=stop,
                                                      **settings.nats_credentials())

        connecting = asyncio.create_task(_connect())
        try:
            async with AsyncExitStack() as stack:
                if spec.extra_lifespan is not None:
                    await stack.enter_async_context(spec.extra_lifespan(app))
                freeze_startup_heap()
                yield
        finally:
            stop.set()
            connecting.cancel()
            with suppress(BaseException):
                await connecting
            if app.state.nats is not None:
                with suppress(Exception):
                    await app.state.nats.close()
            await app.state.db.dispose()

    return lifespan


def create_app(spec: ServiceSpec[Any], settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or spec.settings_cls()
    configure_logging(spec.name, settings.log_level, settings.log_json)
    metrics = ServiceMetrics(spec.name)
    lifespan = _lifespan(spec, settings)
    # No /docs here: FastAPI's page loads Swagger from a CDN; the gateway serves it offline for the merged API.
    # FastAPI's native OpenTelemetry looks up the global providers on every request (~10 % of a small route's CPU,
    # bench/profiles/msm.md); it stays on where OpenTelemetry is configured (an OTLP endpoint or exporter is set).
    otel = any(os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER",
                                                   "FASTAPI_OTEL_AUTO_CONFIGURE"))
    app = FastAPI(title=spec.title, description=spec.description, version="0.1.0", lifespan=lifespan,
                  openapi_url=spec.openapi_url, docs_url=None, redoc_url=None,
                  telemetry=None if otel else {"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.spec = spec
    app.state.metrics = metrics
    install_error_handlers(app)
    # add_middleware puts each one outside the previous: the request context (ids, metrics) is outermost,
    # so the guard's refusals are counted and carry X-Request-ID.
    app.add_middleware(RequestBodyGuard, max_json_depth=settings.max_json_depth,
                       body_timeout_seconds=settings.http_body_timeout_seconds)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(ops_router(spec), include_in_schema=False)
    app.include_router(ops_router(spec), prefix=f"/api/{spec.name}")
    app.include_router(plugin_router(spec), prefix=f"/api/{spec.name}")
    for router in spec.routers():
        app.include_router(router, prefix=f"/api/{spec.name}")
    for router in spec.root_routers():
        app.include_router(router)
    if spec.customize is not None:
        spec.customize(app)
    return app


async def readiness(app: FastAPI) -> dict[str, str]:
    checks: dict[str, str] = {}

    async def _check(name: str, fn: Callable[[], Any]) -> None:
        try:
            await asyncio.wait_for(fn(), 3.0)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a failing dependency is reported, not raised
            checks[name] = f"fail: {type(exc).__name__}: {str(exc)[:200]}"

    nats: NATS | None = app.state.nats

    async def _nats() -> None:
        if nats is None or not nats.is_connected:
            raise ConnectionError("not connected")
        await nats.flush(timeout=2)

    probes = [_check("database", app.state.db.ping), _check("nats", _nats)]
    if app.state.spec.uses_object_store:
        probes.append(_check("object_store", app.state.store.check))
    await asyncio.gather(*probes)
    if app.state.spec.extra_readiness is not None:
        checks.update(await app.state.spec.extra_readiness(app))
    return checks


METRICS_ROLE: Role = "engineer"


async def metrics_access(request: Request) -> None:
    """`/metrics` is not public: Prometheus sends `Authorization: Bearer <metrics_token>`; a person comes
    through the gateway with an engineer's (or a maintainer's) identity. The numbers name routes,
    deployments and consumers, and scraping them costs database and NATS round trips."""
    settings: ServiceSettings = request.app.state.settings
    expected = settings.metrics_token.get_secret_value()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode()):
        return
    signed = request.headers.get(IDENTITY_HEADER)
    if not signed:
        raise Unauthorized("metrics need 'Authorization: Bearer <MLIFE_METRICS_TOKEN>' or an engineer's identity",
                           headers={"WWW-Authenticate": "Bearer"})
    identity = verify_identity(signed, settings.identity_secret.get_secret_value())
    if not identity.has(METRICS_ROLE):
        raise Forbidden(f"metrics need the {METRICS_ROLE} role; you are {identity.role}")


async def _refresh_gauges(app: FastAPI, spec: ServiceSpec[Any], m: ServiceMetrics) -> None:
    """The gauges read at scrape time: outbox backlog, dead letters and each durable consumer's lag (a
    failing source leaves its gauge as it was)."""
    with suppress(Exception):
        async with app.state.db.transaction() as session:
            m.outbox_backlog.labels(spec.name).set(await OutboxRepository(session).backlog())
            m.dead_letters.labels(spec.name).set(await DeadLetterRepository(session).total())
    nats: NATS | None = app.state.nats
    if nats is None or not nats.is_connected or not spec.uses_object_store:
        return
    js = nats.jetstream()
    for sub in spec.subscriptions(ServiceContext(app.state.settings, app.state.raw_store, app.state.store)):
        with suppress(Exception):
            durable = durable_name(spec.name, sub)
            info = await asyncio.wait_for(js.consumer_info(sub.stream_name, durable), 2.0)
            m.consumer_lag.labels(spec.name, durable).set(int(info.num_pending or 0) + int(info.num_ack_pending or 0))


def ops_router(spec: ServiceSpec[Any]) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok", "service": spec.name}

    @router.get("/readyz", responses={503: {"description": "a dependency is down"}})
    async def readyz(request: Request) -> JSONResponse:
        """Ready: the database, NATS and the object store (and, for the gateway, every service) answer."""
        checks = await readiness(request.app)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "fail", "service": spec.name, "checks": checks},
                            status_code=200 if ok else 503)

    @router.get("/metrics", response_class=Response, dependencies=[Depends(metrics_access)])
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: requests and latency per route, outbox backlog, consumer lag, dead letters
        (`Authorization: Bearer <metrics token>`, or an engineer)."""
        m: ServiceMetrics = request.app.state.metrics
        await _refresh_gauges(request.app, spec, m)
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    router.include_router(dead_letter_router(spec))
    return router
