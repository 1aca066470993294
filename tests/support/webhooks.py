"""A webhook receiver for the tests: a real HTTP server on loopback that records every request and answers
with the statuses queued in `statuses` (then 200), optionally after a pause (to overlap two senders)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support.http_server import LocalServer, QuietHandler


class Receiver(LocalServer):
    def __init__(self, *, pause: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                if pause:
                    time.sleep(pause)
                with receiver.lock:
                    receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.reply(status)

        super().__init__(Handler, path="/hook")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's event, each checked with the `standardwebhooks` package's own verifier (raises when one
        does not verify with `secret`)."""
        return [Webhook(secret).verify(r["body"], r["headers"]) for r in self.requests]
