"""The predict lane: `POST /api/msm/serve/{deployment}/predict` answered without the router.

A pure ASGI middleware, the innermost of MSM's: the request context (request id, metrics, the NUL check) and the
body guard (JSON depth, body read timeout) are outside it and see every request as before. What it skips is the
rest of the framework a small model's predict paid for on every call (Starlette's exception middleware, FastAPI's
exit stack, route matching over every router, the Request and Response objects): a third of the CPU of a request
at concurrency 1 (bench/profiles/msm.md).

The lane answers only a prediction that succeeds. Anything else — no identity token, a bad one, a body past the
size limit, invalid inputs, an unknown deployment, a failure — is handed, with the body messages it has read so
far, to the stack behind it, where `msm.serving.router.predict_endpoint` answers it exactly as it did before the lane:
the same status, body and headers. A request handed over after its inference ran is predicted again there
(inference has no side effect; a failed prediction-log write is simply tried again).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlife_shared.auth import IDENTITY_HEADER
from mlife_shared.http_limits import BodyRefused
from msm.serving.router import check_declared_size, predict_answer, predict_endpoint, serving_identity

_IDENTITY = IDENTITY_HEADER.lower().encode("latin-1")
_SUFFIX = "/predict"


class _HandOver(Exception):
    """The lane leaves this request to the route behind it."""


class PredictLane:
    def __init__(self, app: ASGIApp, *, prefix: str, route: BaseRoute) -> None:
        self.app = app
        self.prefix = f"{prefix}/serve/"
        self.route = route  # the reference route: its template labels the request's metrics, as the router would

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or not path.startswith(self.prefix) or not path.endswith(_SUFFIX):
            await self.app(scope, receive, send)
            return
        deployment = path[len(self.prefix):-len(_SUFFIX)]
        if not deployment or "/" in deployment:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the template of the request's metrics (the guard may refuse the body)
        messages: list[Message] = []
        try:
            answer = await self._predict(scope, receive, deployment, messages)
        except BodyRefused:
            raise  # the guard outside answers its own refusals (too deep, stalled)
        except Exception:  # noqa: BLE001 - every other outcome is the reference route's to answer
            await self.app(scope, _replay(iter(messages), receive), send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    async def _predict(self, scope: Scope, receive: Receive, deployment: str, messages: list[Message]) -> bytes:
        state = scope["app"].state
        token = declared = None
        for name, value in scope["headers"]:
            if name == _IDENTITY:
                token = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        if not token:
            raise _HandOver
        serving_identity(state, token)
        limit: int = state.settings.max_request_bytes
        check_declared_size(declared, limit)
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                raise _HandOver  # a disconnect: the route behind sees it too
            size += len(message.get("body", b""))
            if size > limit:
                raise _HandOver
            if not message.get("more_body", False):
                break
        raw = messages[0].get("body", b"") if len(messages) == 1 else b"".join(m.get("body", b"") for m in messages)
        return await predict_answer(state, deployment, raw)


def _replay(messages: Iterator[Message], receive: Receive) -> Receive:
    """`receive` that gives the messages the lane already took, then the live ones."""

    async def replay() -> Message:
        for message in messages:
            return message
        return await receive()

    return replay


def install(app: FastAPI) -> None:
    """Put the lane innermost of the app's middlewares (inside the request context and the body guard)."""
    prefix = f"/api/{app.state.spec.name}"
    # What the request's metrics are labelled with: the reference route, as the router would have matched it.
    route = Route(f"{prefix}/serve/{{deployment}}/predict", predict_endpoint, methods=["POST"])
    app.user_middleware.append(Middleware(PredictLane, prefix=prefix, route=route))
