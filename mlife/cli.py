"""`mlife`: the command line. `mlife up` runs the whole platform on this machine."""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlife", description="MLife command line")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run NATS, the four services and the gateway on this machine (embedded)")
    up.add_argument("--port", type=int, default=None, help="gateway port (default: $MLIFE_PORT or 8000)")
    args = parser.parse_args(argv)
    if args.command == "up":
        from mlife.launcher import Launcher, LauncherConfig

        config = LauncherConfig.from_env(port=args.port)
        sys.exit(asyncio.run(Launcher(config).run()))


if __name__ == "__main__":
    main()
