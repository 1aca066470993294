"""MTT in the tests: datasets as DAM would write them, events delivered through MTT's consumers, waiting for a
task's status."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from mlife_shared.app import service_context
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.app import SPEC
from mtt.config import Settings
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PREP = {"size": [8, 8], "mode": "L", "scale": 1 / 255, "layout": "flat"}  # 8x8 grey images, flat


async def deliver(settings: Settings, handler, data) -> None:  # type: ignore[no-untyped-def]
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            await handler(new_envelope(data), session, ctx=service_context(SPEC, settings))
    finally:
        await db.dispose()


async def task_in(client: httpx.AsyncClient, task_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = (await client.get(f"/tasks/{task_id}")).json()
        return body if body["status"] in statuses else None

    return await wait_for(check, f"task {task_id} in {statuses}", timeout=180, interval=0.2)


async def put_dataset(settings: Settings, items: list[tuple[bytes, str]], *,
                      badcase_ids: list[str | None] | None = None) -> tuple[str, str]:
    """What DAM does for "group items": each file under dam/files/<md5>, a JSON-lines manifest. → (dataset id, key)"""
    store = make_store(settings)
    ds = str(uuid.uuid4())
    lines = []
    for i, (data, label) in enumerate(items):
        md5 = hashlib.md5(data).hexdigest()
        await store.put(f"dam/files/{md5}", iterate(data))
        extra = {"badcase_id": badcase_ids[i]} if badcase_ids and badcase_ids[i] else {}
        lines.append({"md5": md5, "key": f"dam/files/{md5}", "path": f"{md5}.png", "annotation": None,
                      "label": label, "extra": extra, "media_type": "image"})
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await store.put(key, iterate("".join(json.dumps(x) + "\n" for x in lines).encode()))
    return ds, key


def digits(limit: int | None = None) -> list[tuple[bytes, str]]:
    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    try:
        from make_dataset import digits_pngs
    finally:
        sys.path.pop(0)
    return digits_pngs(limit)
