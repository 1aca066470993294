"""`python -m gateway api|worker|all|migrate`: like every service's entry point (mlife_shared.cli), but the api
is built by `gateway.app.create`, which adds the edge middleware (hosts, body limits, authentication). The
worker consumes every public event (webhooks) and runs the webhook dispatcher; `all` is both in one process."""

from __future__ import annotations

import argparse
import os

from gateway.app import SPEC, create
from gateway.config import Settings
from mlife_shared.cli import migrate, run_api_and_worker, run_on_uvloop
from mlife_shared.http_limits import run_server
from mlife_shared.logging import configure_logging
from mlife_shared.worker import run_worker


def _serving(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("--host", default=os.environ.get("MLIFE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLIFE_GATEWAY_PORT", "8000")))
    parser.add_argument("--migrate", action="store_true", help="upgrade the database before serving")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway", description=SPEC.title)
    sub = parser.add_subparsers(dest="command", required=True)
    _serving(sub, "api", "serve the gateway (API, proxy, web UI)")
    _serving(sub, "all", "the api and the worker in one process (the embedded default)")
    sub.add_parser("worker", help="consume the public events (webhooks) and send the webhook deliveries")
    sub.add_parser("migrate", help="upgrade the gateway's database to the latest schema")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate" or getattr(args, "migrate", False):
        configure_logging(SPEC.name, settings.log_level, settings.log_json)
        migrate(SPEC, settings)
    if args.command == "api":
        run_server(create(settings), host=args.host, port=args.port, settings=settings)
    elif args.command == "all":
        run_on_uvloop(run_api_and_worker(SPEC, settings, args.host, args.port, app=create(settings)))
    elif args.command == "worker":
        configure_logging(f"{SPEC.name}-worker", settings.log_level, settings.log_json)
        run_on_uvloop(run_worker(SPEC, settings))


if __name__ == "__main__":
    main()
