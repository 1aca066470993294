"""`python -m <service> api|worker|migrate`: the three entry points of every service."""

from __future__ import annotations

import argparse
import asyncio
import os

import uvicorn

from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.logging import configure_logging
from mlife_shared.migrations import upgrade
from mlife_shared.worker import run_worker


def main(spec: ServiceSpec, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=spec.name, description=spec.title)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=os.environ.get("MLIFE_HOST", "127.0.0.1"))
    api.add_argument("--port", type=int, default=int(os.environ.get(f"MLIFE_{spec.name.upper()}_PORT", "8000")))
    if spec.has_worker:
        sub.add_parser("worker", help="run the outbox relay and the event consumers")
    sub.add_parser("migrate", help="upgrade the service's database to the latest schema")
    args = parser.parse_args(argv)

    settings = spec.settings_cls()
    if args.command == "api":
        uvicorn.run(create_app(spec, settings), host=args.host, port=args.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=10)
    elif args.command == "worker":
        configure_logging(f"{spec.name}-worker", settings.log_level, settings.log_json)
        asyncio.run(run_worker(spec, settings))
    elif args.command == "migrate":
        configure_logging(spec.name, settings.log_level, settings.log_json)
        migrate(spec, settings)


def migrate(spec: ServiceSpec, settings: "ServiceSettings") -> None:  # noqa: F821
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(spec.migrations, settings.database_url)
    if spec.after_migrate is not None:
        asyncio.run(spec.after_migrate(settings))
