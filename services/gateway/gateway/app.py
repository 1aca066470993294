import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from gateway import hub
from gateway.alerts.jobs import alert_jobs
from gateway.alerts.router import router as alerts_router
from gateway.config import Settings
from gateway.edge.middleware import AuthMiddleware, BodyLimitMiddleware, HostAllowListMiddleware
from gateway.events.router import router as events_router
from gateway.proxy.router import ProxyFastPath
from gateway.proxy.router import router as proxy_router
from gateway.proxy.service import Upstreams
from gateway.session.router import router as session_router
from gateway.subscribers.callout import Responder
from gateway.subscribers.router import router as subscribers_router
from gateway.ui.router import router as ui_router
from gateway.user.router import router as user_router
from gateway.user.service import UserService, dummy_hash
from gateway.webhooks.router import router as webhooks_router
from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.db import Database


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.upstreams = Upstreams(app.state.settings)
    # The hash an unknown user's login is checked against, made before the first login (not at import), so
    # that login costs what a known user's does.
    await asyncio.to_thread(dummy_hash)
    settings: Settings = app.state.settings
    # The NATS auth callout for outside subscribers (gateway/subscribers/callout.py), on the API's connection.
    responder = None
    if settings.auth_callout_seed is not None:
        responder = Responder(app.state.db, settings.auth_callout_seed.get_secret_value(),
                              settings.subscriber_login_ttl_seconds)
        responder.start(lambda: app.state.nats)
    try:
        yield
    finally:
        if responder is not None:
            await responder.stop()
        await app.state.upstreams.close()


async def _readiness(app: FastAPI) -> dict[str, str]:
    upstreams: Upstreams = app.state.upstreams
    return await upstreams.readiness()


async def _bootstrap_admin(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            token = settings.admin_token.get_secret_value() if settings.admin_token else None
            password = settings.admin_password.get_secret_value() if settings.admin_password else None
            result = await UserService(session).ensure_admin(token=token, password=password)
    finally:
        await db.dispose()
    if result.created:
        lines = ["", "MLife: the admin user was created (role maintainer). Keep these; they are shown once."]
        if result.token:
            lines.append(f"  admin API token: {result.token}")
        if result.password:
            lines.append(f"  admin password:  {result.password}")
        print("\n".join(lines) + "\n", flush=True)


SPEC = ServiceSpec(
    name="gateway",
    title="MLife gateway",
    description="One API for BAM, DAM, MTT and MSM; authentication and roles.",
    settings_cls=Settings,
    migrations="gateway.migrations",
    routers=lambda: [session_router, user_router, events_router, webhooks_router, subscribers_router,
                     alerts_router],
    root_routers=lambda: [proxy_router, ui_router],
    subscriptions=hub.subscriptions,  # every public event: webhooks (and what else watches them all)
    jobs=lambda ctx: hub.jobs(ctx) + alert_jobs(ctx),  # the webhook dispatcher; alert timing and e-mail
    has_worker=True,
    uses_object_store=False,
    extra_readiness=_readiness,
    openapi_url="/api/gateway/openapi.json",
    extra_lifespan=_lifespan,
    after_migrate=_bootstrap_admin,
)


def create(settings: Settings | None = None) -> FastAPI:
    """The gateway app: the common service skeleton plus the edge. The edge middleware sits inside the
    request-context middleware (so its refusals carry X-Request-ID) and outside the routes."""
    settings = settings or Settings()
    app = create_app(SPEC, settings)
    # user_middleware[0] is the outermost; create_app added the request-context middleware there.
    app.user_middleware += [Middleware(HostAllowListMiddleware, settings=settings),
                            Middleware(BodyLimitMiddleware, settings=settings),
                            Middleware(AuthMiddleware, settings=settings),
                            Middleware(ProxyFastPath)]
    return app
