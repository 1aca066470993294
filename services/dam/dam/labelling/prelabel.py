"""The pre-labels of a labelling task's items: a column of the document, or a model's answers (a deployment
MSM serves, called inside the platform as the caller, or an outside serving endpoint through the outbound
guard)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from dam.config import Settings
from dam.document.models import DocumentRow
from dam.labelling.exceptions import InvalidLabellingTask
from dam.labelling.schemas import Prelabel
from mlife_shared import outbound
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity


def _to_label(value: Any, labels: list[str]) -> Any:
    """A model output as a label: class scores → the label of the highest, an index → its label, text as is."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        if len(value) == len(labels):
            return labels[max(range(len(value)), key=lambda i: value[i])]
        if len(value) == 1:
            value = value[0]
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(labels):
        return labels[int(value)]
    return value


ALLOW_SETTING = "MLIFE_DAM_OUTBOUND_ALLOW_HOSTS"


def model_inputs(pre: Prelabel, rows: list[Any]) -> list[Any]:
    inputs = []
    for r in rows:
        value = r.extra.get(pre.input_column)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise InvalidLabellingTask(f"row {r.position}: {pre.input_column} is not JSON") from exc
        if value is None:
            raise InvalidLabellingTask(f"row {r.position} has no {pre.input_column}")
        inputs.append(value)
    return inputs


def _msm_predict(settings: Settings, deployment: str,
                 identity: Identity | None) -> Callable[[bytes], Awaitable[tuple[int, bytes]]]:
    """MSM's predict for one deployment, inside the platform: the operator-set MSM URL (never a user URL), the
    caller's identity signed as the gateway would, short-lived. Nothing user-supplied chooses where it goes."""
    url = f"{settings.msm_url.rstrip('/')}/api/msm/serve/{quote(deployment, safe='')}/predict"
    headers = {"content-type": "application/json"}
    if identity is not None:
        headers[IDENTITY_HEADER] = sign_identity(identity, settings.identity_secret.get_secret_value(),
                                                 ttl_seconds=min(settings.identity_ttl_seconds, 60))

    async def call(body: bytes) -> tuple[int, bytes]:
        async with httpx.AsyncClient(timeout=settings.prelabel_timeout_seconds, trust_env=False) as client:
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise InvalidLabellingTask(f"MSM is unreachable for deployment {deployment!r}: "
                                           f"{type(exc).__name__}") from exc
            if r.status_code == 404:
                raise InvalidLabellingTask(f"MSM serves no deployment {deployment!r}")
            return r.status_code, r.content
    return call


def _endpoint(settings: Settings, pre: Prelabel) -> Callable[[bytes], Awaitable[tuple[int, bytes]]]:
    """An outside endpoint, through the shared outbound guard: checked on every hop, no MLife credential."""
    secret = {"authorization": pre.authorization.get_secret_value()} if pre.authorization is not None else None

    async def call(body: bytes) -> tuple[int, bytes]:
        try:
            r = await outbound.fetch("POST", pre.endpoint or "", allow=settings.outbound_allow_hosts,
                                     what="prelabel.endpoint", setting=ALLOW_SETTING, content=body,
                                     headers={"content-type": "application/json"}, secret_headers=secret,
                                     timeout=settings.prelabel_timeout_seconds,
                                     max_bytes=settings.prelabel_max_response_bytes)
        except outbound.OutboundError as exc:
            raise InvalidLabellingTask(str(exc.message)) from exc
        return r.status_code, r.content
    return call


async def model_prelabels(pre: Prelabel, rows: list[Any], labels: list[str], identity: Identity | None,
                          settings: Settings) -> list[Any]:
    """Pre-labels from a model answering MSM's predict shape (`{"inputs": {name: batch}}` →
    `{"outputs": {...}}`), in batches of 64. The answer's body is never echoed: errors name host and status."""
    inputs = model_inputs(pre, rows)
    if pre.deployment is not None:
        call, where = _msm_predict(settings, pre.deployment, identity), f"MSM deployment {pre.deployment!r}"
    else:
        call, where = _endpoint(settings, pre), f"the serving endpoint at {urlsplit(pre.endpoint or '').hostname}"
    out: list[Any] = []
    for start in range(0, len(inputs), 64):
        batch = inputs[start:start + 64]
        status, content = await call(json.dumps({"inputs": {pre.input_name: batch}}).encode())
        if status != 200:
            raise InvalidLabellingTask(f"{where} answered HTTP {status}")
        try:
            outputs = json.loads(content)["outputs"]
            values = outputs[pre.output_name] if pre.output_name else next(iter(outputs.values()))
            assert isinstance(values, list) and len(values) == len(batch)
        except (ValueError, KeyError, TypeError, StopIteration, AssertionError) as exc:
            raise InvalidLabellingTask(f"{where} must answer {{\"outputs\": {{name: [one per input]}}}}") from exc
        out.extend(_to_label(v, labels) for v in values)
    return out


def _source_url(url: str) -> str:
    """The endpoint as recorded on the task: without query or fragment (they may carry a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:280]


async def check(pre: Prelabel | None, settings: Settings) -> None:
    """Refuses an outside endpoint the outbound guard would refuse, before anything is read."""
    if pre is not None and pre.endpoint is not None:
        await outbound.check_url(pre.endpoint, settings.outbound_allow_hosts, what="prelabel.endpoint",
                                 setting=ALLOW_SETTING)


def check_column(pre: Prelabel | None, columns: Sequence[str]) -> None:
    if pre and pre.column and pre.column != "annotation" and pre.column not in columns:
        raise InvalidLabellingTask(f"unknown pre-label column {pre.column!r}")


async def prelabels(pre: Prelabel | None, rows: list[DocumentRow], columns: Sequence[str], labels: list[str],
                    identity: Identity | None, settings: Settings) -> list[Any]:
    """Each row's pre-label: its column's value, a model's answer, or None when none is asked for."""
    if pre is None:
        return [None] * len(rows)
    if pre.column is not None:
        return [r.annotation if pre.column == "annotation" else r.extra.get(pre.column) for r in rows]
    if pre.input_column not in columns:
        raise InvalidLabellingTask(f"unknown input column {pre.input_column!r}")
    return await model_prelabels(pre, rows, labels, identity, settings)


def source(pre: Prelabel | None) -> str | None:
    """Where the task's pre-labels came from, as recorded on the task."""
    if pre is None:
        return None
    return ((pre.column is not None and f"column:{pre.column}")
            or (pre.deployment is not None and f"deployment:{pre.deployment}")
            or f"endpoint:{_source_url(pre.endpoint or '')}")
