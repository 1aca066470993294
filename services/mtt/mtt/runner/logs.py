"""Task logs in the object store: the runner uploads what the process printed every
`log_flush_seconds` as a new part (`tasks/<id>/logs/<attempt>/<seq>.log`); the API concatenates the
parts from an offset, which is the live tail."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all


def log_prefix(task_id: uuid.UUID, attempt: int) -> str:
    return f"tasks/{task_id}/logs/{attempt}/"


class LogSink:
    def __init__(self, store: ScopedStore, task_id: uuid.UUID, attempt: int, local: Path) -> None:
        self.store = store
        self.prefix = log_prefix(task_id, attempt)
        self.local = local
        self.pending = bytearray()
        self.seq = 0
        self.lock = asyncio.Lock()
        self._fh = local.open("ab")

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        self.pending.extend(data)

    def line(self, text: str) -> None:
        self.write(f"[mlife] {text}\n".encode())

    async def flush(self) -> None:
        async with self.lock:
            if not self.pending:
                return
            data, self.pending = bytes(self.pending), bytearray()
            self.seq += 1
            await self.store.put(f"{self.prefix}{self.seq:06d}.log", iterate(data), content_type="text/plain")

    async def run_flusher(self, every: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
            await self.flush()

    def close(self) -> None:
        self._fh.close()


async def read_log(store: ScopedStore, task_id: uuid.UUID, attempt: int, offset: int, limit: int) -> tuple[bytes, int]:
    """Bytes of the attempt's log from `offset` (at most `limit`), and the offset after them."""
    keys = sorted([k async for k in store.list(log_prefix(task_id, attempt))])
    out = bytearray()
    pos = 0
    for key in keys:
        info = await store.stat(key)
        size = info.size if info else 0
        if pos + size <= offset:
            pos += size
            continue
        data = await read_all(await store.get(key))
        start = max(0, offset - pos)
        out.extend(data[start:])
        pos += len(data)
        if len(out) >= limit:
            break
    out = out[:limit]
    return bytes(out), offset + len(out)
