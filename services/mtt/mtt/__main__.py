from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from mlife_shared.cli import main as _main
from mtt.app import SPEC

if TYPE_CHECKING:
    from mtt.config import Settings


def runner_settings() -> Settings:
    """A runner talks to the database, NATS and the object store, never to a service over HTTP: it holds no
    identity key. Its settings get a throwaway secret, so neither `MLIFE_IDENTITY_SECRET` nor
    `$MLIFE_HOME/identity.key` is read (nor created), and none can reach a task through the runner."""
    import secrets

    from pydantic import SecretStr

    from mtt.config import Settings

    return Settings(identity_secret=SecretStr(secrets.token_urlsafe(32)))


def runner(argv: list[str]) -> None:
    """`python -m mtt runner [--queue Q] [--concurrency N] [--id NAME]`: a runner process of the work queue."""
    from mlife_shared.logging import configure_logging
    from mtt.runner.runner import main as run_main

    parser = argparse.ArgumentParser(prog="mtt runner", description="run MTT tasks from the work queue")
    parser.add_argument("--queue", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--id", default=None)
    args = parser.parse_args(argv)
    settings = runner_settings()
    configure_logging("mtt-runner", settings.log_level, settings.log_json)
    asyncio.run(run_main(settings, queue=args.queue, concurrency=args.concurrency, runner_id=args.id))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "runner":
        runner(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "all":  # the embedded platform: one process runs tasks too
        os.environ.setdefault("MLIFE_MTT_EMBEDDED_RUNNERS", "1")
    _main(SPEC)


if __name__ == "__main__":
    main()
