"""`python -m gateway api|migrate`: like every service's entry point (mlife_shared.cli), but the api is
built by `gateway.app.create`, which adds the edge middleware (hosts, body limits, authentication)."""

from __future__ import annotations

import argparse
import os

from gateway.app import SPEC, create
from gateway.config import Settings
from mlife_shared.cli import migrate
from mlife_shared.http_limits import run_server
from mlife_shared.logging import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway", description=SPEC.title)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the gateway (API, proxy, web UI)")
    api.add_argument("--host", default=os.environ.get("MLIFE_HOST", "127.0.0.1"))
    api.add_argument("--port", type=int, default=int(os.environ.get("MLIFE_GATEWAY_PORT", "8000")))
    api.add_argument("--migrate", action="store_true", help="upgrade the database before serving")
    sub.add_parser("migrate", help="upgrade the gateway's database to the latest schema")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate" or args.migrate:
        configure_logging(SPEC.name, settings.log_level, settings.log_json)
        migrate(SPEC, settings)
    if args.command == "api":
        run_server(create(settings), host=args.host, port=args.port, settings=settings)


if __name__ == "__main__":
    main()
