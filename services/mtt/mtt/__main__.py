import argparse
import asyncio
import os
import sys

from mlife_shared.cli import main as _main
from mtt.app import SPEC


def runner(argv: list[str]) -> None:
    """`python -m mtt runner [--queue Q] [--concurrency N] [--id NAME]`: a runner process of the work queue."""
    from mlife_shared.logging import configure_logging
    from mtt.config import Settings
    from mtt.runner.runner import main as run_main

    parser = argparse.ArgumentParser(prog="mtt runner", description="run MTT tasks from the work queue")
    parser.add_argument("--queue", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--id", default=None)
    args = parser.parse_args(argv)
    settings = Settings()
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
