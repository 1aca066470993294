"""BAM in the tests: a badcase report, pictures, running BAM's consumers until a condition holds, outcomes."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from nats.js import JetStreamContext
from PIL import Image, ImageDraw

from bam.app import subscriptions
from mlife_shared.app import ServiceContext
from mlife_shared.messaging.consumer import ConsumerRunner
from mlife_shared.objectstore import LocalObjectStore
from mlife_shared.objectstore.base import iterate
from tests.support.waiting import consume_until

MD5 = "0123456789abcdef0123456789abcdef"


def report(**kw: Any) -> dict[str, Any]:
    body = {"function": "emotion", "data": [{"kind": "md5", "value": MD5, "media_type": "image"}],
            "prediction": "happy", "ground_truth": "sad", "description": "Driver wears a mask",
            "model_name": "expr", "model_version": "1.0", "system_version": "dms-2.3"}
    body.update(kw)
    return body


def png(draw_offset: int = 0, size: int = 128, quality_noise: int = 0) -> bytes:
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([20 + draw_offset, 30, 70 + draw_offset, 100], fill="black")
    d.ellipse([80, 10, 120, 50], fill=(200, 30, 30))
    if quality_noise:
        img = img.resize((size // 2, size // 2)).resize((size, size))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


async def post_with_data(bam: httpx.AsyncClient, data: bytes, **kw: Any) -> httpx.Response:
    body = report(data=[], **kw)
    return await bam.post("/badcases/with-data", data={"report": json.dumps(body)},
                          files={"file": ("frame.png", data, "application/octet-stream")})


async def run_consumers(bam: httpx.AsyncClient, bam_db: str, js: JetStreamContext,
                        until: Callable[[], Awaitable[Any]]) -> ConsumerRunner:
    """BAM's consumers on the bus until `until()` holds."""
    app = bam.app  # type: ignore[attr-defined]
    ctx = ServiceContext(app.state.settings, app.state.raw_store, app.state.store)
    return await consume_until("bam", bam_db, js, subscriptions(ctx), until)


async def write_outcomes(bam: httpx.AsyncClient, lines: list[dict]) -> str:
    store: LocalObjectStore = bam.app.state.raw_store  # type: ignore[attr-defined]
    key = f"mtt/outcomes/{uuid.uuid4()}.jsonl"
    await store.put(key, iterate("\n".join(json.dumps(x) for x in lines).encode() + b"\n"))
    return key


def outcomes_recorded(bam: httpx.AsyncClient, badcase_id: str, n: int) -> Callable[[], Awaitable[bool]]:
    """Until the badcase has `n` outcomes: they commit with the status changes of their event."""

    async def _recorded() -> bool:
        return len((await bam.get(f"/badcases/{badcase_id}/outcomes")).json()["history"]) >= n
    return _recorded
