"""`python -m <service> api|worker|migrate`: the three entry points of every service."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Coroutine
from typing import Any

import uvicorn
from fastapi import FastAPI

from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.http_limits import run_server, server_config
from mlife_shared.logging import configure_logging
from mlife_shared.settings import ServiceSettings
from mlife_shared.worker import run_worker


def main(spec: ServiceSpec[Any], argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=spec.name, description=spec.title)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=os.environ.get("MLIFE_HOST", "127.0.0.1"))
    api.add_argument("--port", type=int, default=int(os.environ.get(f"MLIFE_{spec.name.upper()}_PORT", "8000")))
    api.add_argument("--migrate", action="store_true", help="upgrade the database before serving")
    if spec.has_worker:
        sub.add_parser("worker", help="run the outbox relay and the event consumers")
        both = sub.add_parser("all", help="api and worker in one process (the embedded default)")
        both.add_argument("--host", default=os.environ.get("MLIFE_HOST", "127.0.0.1"))
        both.add_argument("--port", type=int, default=int(os.environ.get(f"MLIFE_{spec.name.upper()}_PORT", "8000")))
        both.add_argument("--migrate", action="store_true", help="upgrade the database before serving")
    sub.add_parser("migrate", help="upgrade the service's database to the latest schema")
    args = parser.parse_args(argv)

    settings = spec.settings_cls()
    if getattr(args, "migrate", False):
        configure_logging(spec.name, settings.log_level, settings.log_json)
        migrate(spec, settings)
    if args.command == "api":
        run_server(create_app(spec, settings), host=args.host, port=args.port, settings=settings)
    elif args.command == "all":
        run_on_uvloop(run_api_and_worker(spec, settings, args.host, args.port))
    elif args.command == "worker":
        configure_logging(f"{spec.name}-worker", settings.log_level, settings.log_json)
        run_on_uvloop(run_worker(spec, settings))
    elif args.command == "migrate":
        configure_logging(spec.name, settings.log_level, settings.log_json)
        migrate(spec, settings)


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run(main)` on uvloop's event loop, as uvicorn runs the `api` servers (its `loop="auto"`); the
    standard loop where uvloop is not installed. The pure-Python loop was ~10 % of a predict's CPU in `all`."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def run_api_and_worker(spec: ServiceSpec[Any], settings: ServiceSettings, host: str, port: int,
                             app: FastAPI | None = None) -> None:
    """One process for both roles: half the memory of two, for the embedded platform on one machine. `app`: the
    service's own app when it adds to the common one (the gateway's edge)."""
    app = app or create_app(spec, settings)
    server = uvicorn.Server(server_config(app, host=host, port=port, settings=settings))
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(spec, settings, stop, handle_signals=False))
    try:
        await server.serve()  # returns on SIGTERM / SIGINT after a graceful shutdown
    finally:
        stop.set()
        await worker


def migrate(spec: ServiceSpec[Any], settings: ServiceSettings) -> None:
    if settings.database_url.startswith("sqlite"):
        path = settings.database_url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    from mlife_shared.migrations import upgrade  # alembic: ~7 MiB a process that only serves (issue 17)

    upgrade(spec.migrations, settings.database_url)
    if spec.after_migrate is not None:
        asyncio.run(spec.after_migrate(settings))
