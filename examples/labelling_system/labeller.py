"""A labelling system on MLife's public event API: a worked example of an outside subscriber (docs/subscribing.md).

It follows `labelling.*` and `badcase.test_data_requested` with `mlife.events.subscribe` (a durable consumer of
its own per stream, explicit acks) and answers through the HTTP API, as any labelling tool would:

- `labelling.requested`: reads the task and its items (`GET /api/dam/labelling-tasks/{id}` and `…/items`) and
  posts one annotation per item not yet annotated (`POST /api/dam/labelling-tasks/{id}/annotations`). The
  "labeller" is a toy: an item's pre-label when it is one of the task's labels, else the task's first label.
  With every item annotated, DAM writes a new document version and announces `labelling.completed`.
- `labelling.completed`: reports the new document version.
- `badcase.test_data_requested`: reports the badcases that are on their way into DAM's badcase test sets (per
  function, with their ground truth): a team that reviews those labels would queue them here.

Each event handled is printed, and appended as a JSON line to `--record FILE` when given. An event is
acknowledged once handled; a failure of the platform (5xx, unreachable) hands it back (`nak`) to be retried;
an answer that says the event no longer applies (a task already closed, gone) is logged and acknowledged.
Stopped (Ctrl-C, SIGTERM) and started again with the same `--durable`, it goes on where it stopped: the events
published meanwhile are delivered then, none is lost.

    python examples/labelling_system/labeller.py --gateway http://127.0.0.1:8000 --token mlf_… \\
        --nats nats://127.0.0.1:4222 --user reader --password-file ~/.mlife/nats/reader.password

Every option has an environment variable (MLIFE_URL, MLIFE_TOKEN, MLIFE_NATS_URL, MLIFE_NATS_USER,
MLIFE_NATS_PASSWORD). The token needs the `tester` role (annotations); the NATS login is the read-only
`reader` or a subscriber's own credentials made through the gateway (`/api/gateway/subscribers`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import httpx

from mlife.events import Event, subscribe
from mlife_shared.events.contracts import BadcaseTestDataRequested, LabellingCompleted, LabellingRequested

SUBJECTS = ["labelling.*", "badcase.test_data_requested"]
RETRY_SECONDS = 10.0


class Retry(Exception):
    """The platform could not answer now (5xx, unreachable): the event is handed back and comes again."""


def choose(item: dict[str, Any], labels: list[str]) -> str:
    """The toy labeller: the item's pre-label when it is one of the task's labels, else the first label."""
    prelabel = item.get("prelabel")
    return prelabel if isinstance(prelabel, str) and prelabel in labels else labels[0]


def answer(r: httpx.Response) -> Any:
    """The JSON body of a successful answer; Retry for a failure of the platform; an HTTPStatusError otherwise."""
    if r.status_code >= 500:
        raise Retry(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
    r.raise_for_status()
    return r.json()


async def label(http: httpx.AsyncClient, data: LabellingRequested) -> dict[str, Any]:
    """Annotate every item of the task that has no annotation yet; what was done."""
    path = f"/api/dam/labelling-tasks/{data.labelling_task_id}"
    task = answer(await http.get(path))
    if task["status"] != "open":  # a redelivery, or another labeller was quicker: nothing to do
        return {"task": task["id"], "skipped": f"the task is {task['status']}"}
    items = answer(await http.get(f"{path}/items"))
    todo = [{"item_id": i["item_id"], "annotation": choose(i, task["labels"])}
            for i in items if i.get("annotation") is None]
    if todo:
        task = answer(await http.post(f"{path}/annotations", json={"annotations": todo}))
    return {"task": task["id"], "annotated": len(todo), "status": task["status"]}


def test_data(data: BadcaseTestDataRequested) -> dict[str, Any]:
    by_function: dict[str, list[str]] = {}
    for item in data.items:
        by_function.setdefault(item.function, []).append(str(item.badcase_id))
    return {"request": str(data.request_id), "badcases": by_function,
            "ground_truth": {str(i.badcase_id): i.ground_truth for i in data.items}}


async def handle(http: httpx.AsyncClient, event: Event) -> dict[str, Any]:
    """What the labelling system did with one event (Retry: try again later)."""
    payload = event.payload
    try:
        if isinstance(payload, LabellingRequested):
            return await label(http, payload)
        if isinstance(payload, LabellingCompleted):
            return {"task": str(payload.labelling_task_id), "document": str(payload.document_id),
                    "document_version": payload.document_version, "annotated": payload.annotated_count}
        if isinstance(payload, BadcaseTestDataRequested):
            return test_data(payload)
    except httpx.TransportError as exc:
        raise Retry(f"the gateway is unreachable: {exc!r}") from exc
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (401, 403):  # a wrong token or role: no event can succeed; stop, unacked
            raise SystemExit(f"the gateway refused the token ({exc.response.status_code}): {exc.response.text}") from exc
        return {"skipped": f"{exc.response.status_code} {exc.response.text[:300]}"}  # gone or closed: done with it
    return {"skipped": "not an event this labeller handles"}  # a newer subject `labelling.*` matches


async def run(args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {args.token}"}
    record = Path(args.record) if args.record else None
    async with httpx.AsyncClient(base_url=args.gateway, headers=headers, timeout=60) as http:
        extra: dict[str, Any] = {"bind": True} if args.bind else {}  # a gateway subscriber's durables exist
        events = subscribe(SUBJECTS, durable=args.durable, url=args.nats, user=args.user, password=args.password,
                           password_file=args.password_file, **extra)
        print(f"labeller: following {', '.join(SUBJECTS)} as {args.user} (durable {args.durable})", flush=True)
        # however the loop ends, the connection closes (sending the acks given)
        async with aclosing(cast("AsyncGenerator[Event, None]", events)):
            async for event in events:
                try:
                    done = await handle(http, event)
                except Retry as exc:
                    print(f"labeller: {event.type} {event.id}: {exc}; again in {RETRY_SECONDS:.0f} s", flush=True)
                    await event.nak(delay=RETRY_SECONDS)
                    continue
                await event.ack()
                report(event, done, record)


def report(event: Event, done: dict[str, Any], record: Path | None) -> None:
    line = {"id": event.id, "type": event.type, "stream": event.stream, "sequence": event.sequence, **done}
    print(f"labeller: {json.dumps(line)}", flush=True)
    if record is not None:
        with record.open("a") as out:
            out.write(json.dumps(line) + "\n")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="A toy labelling system following MLife's events (docs/subscribing.md)")
    p.add_argument("--gateway", default=env("MLIFE_URL", "http://127.0.0.1:8000"), help="MLife's URL ($MLIFE_URL)")
    p.add_argument("--token", default=env("MLIFE_TOKEN"), help="an API token with the tester role ($MLIFE_TOKEN)")
    p.add_argument("--nats", default=env("MLIFE_NATS_URL", "nats://127.0.0.1:4222"), help="the bus ($MLIFE_NATS_URL)")
    p.add_argument("--user", default=env("MLIFE_NATS_USER", "reader"), help="NATS user ($MLIFE_NATS_USER)")
    p.add_argument("--password", default=env("MLIFE_NATS_PASSWORD"), help="NATS password ($MLIFE_NATS_PASSWORD)")
    p.add_argument("--password-file", help="a file holding the NATS password (mlife up: $MLIFE_HOME/nats/reader.password)")
    p.add_argument("--durable", default="labelling-example", help="the consumer name: keep it to resume")
    p.add_argument("--bind", action="store_true",
                   help="a subscriber made through the gateway: its durables exist already, bind to them")
    p.add_argument("--record", help="append each handled event to this file (JSON lines)")
    args = p.parse_args(argv)
    if not args.token:
        p.error("an API token is needed: --token or $MLIFE_TOKEN (`mlife login`, or the web UI's API tokens)")
    if args.password is None and args.password_file is None:
        p.error("a NATS password is needed: --password, --password-file or $MLIFE_NATS_PASSWORD")
    return args


async def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the acks sent go out with the connection's close
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    try:
        await run(args)
    except asyncio.CancelledError:
        print("labeller: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
