"""`mlife demo [--function digits|shapes|wine|all]`: the closed loop against a running MLife (MLIFE_URL,
MLIFE_TOKEN), one function or several side by side (each in its own thread, with its own names).

    python -m mlife.demo [--url URL] [--token TOKEN] [--function F] [--workdir DIR] [--timeout SECONDS]

Needs an engineer token; moving `production` needs a maintainer (the admin token of `mlife up` is one)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from mlife.client import Client, MLifeAPIError
from mlife.demo.functions import EXAMPLES, FUNCTIONS
from mlife.demo.loop import LoopResult, Stalled


def run_functions(url: str | None, token: str | None, names: list[str], workdir: Path, timeout: float,
                  out: Callable[[str], None] = print) -> dict[str, LoopResult]:
    """Each function's loop in its own thread with its own client; the first failure is raised."""
    results: dict[str, LoopResult] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out(line)

    def one(name: str) -> None:
        client = Client.from_env(url, token)
        try:
            results[name] = FUNCTIONS[name](client, workdir=workdir, timeout=timeout, out=say).run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(n,), name=f"demo-{n}") for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlife demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=None, help="gateway URL (default MLIFE_URL, then `mlife login`'s)")
    parser.add_argument("--token", default=None, help="API token (default MLIFE_TOKEN, then `mlife login`'s)")
    parser.add_argument("--function", default="digits", choices=[*FUNCTIONS, "all"],
                        help="which example function's loop to run (all: the three side by side)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the example data is written (default $MLIFE_HOME/demo or ~/.cache/mlife/demo)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one step may take")
    args = parser.parse_args(argv)
    if not EXAMPLES.is_dir():
        print(f"mlife demo: the example code and data ({EXAMPLES}) are not here: `mlife demo` runs from a checkout "
              "of MLife (git clone, then make up); an installed wheel carries no examples", file=sys.stderr)
        return 2
    workdir = args.workdir or (Path(os.environ["MLIFE_HOME"]) / "demo" if os.environ.get("MLIFE_HOME")
                               else Path.home() / ".cache" / "mlife" / "demo")
    names = list(FUNCTIONS) if args.function == "all" else [args.function]
    url = Client.from_env(args.url, args.token).url
    try:
        run_functions(args.url, args.token, names, workdir, args.timeout, out=lambda s: print(s, flush=True))
    except Stalled as exc:
        print(f"mlife demo: {exc}", file=sys.stderr)
        return 1
    except MLifeAPIError as exc:
        print(f"mlife demo: the API refused a step: {exc}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, OSError) as exc:  # connection refused, …
        print(f"mlife demo: cannot reach MLife at {url}: {exc}", file=sys.stderr)
        return 1
    return 0
