"""Local files to and from the object store, in chunks (models, code archives, uploads)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from mlife_shared.errors import PayloadTooLarge
from mlife_shared.objectstore import ObjectStore


async def file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A local file as the chunk stream `ObjectStore.put` takes."""
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


async def download(store: ObjectStore, key: str, path: Path) -> Path:
    """The object `key` into `path` (`ObjectNotFound` when it is missing)."""
    stream = await store.get(key)
    with path.open("wb") as fh:
        async for chunk in stream:
            fh.write(chunk)
    return path


async def spool(chunks: AsyncIterable[bytes], path: Path, limit: int) -> int:
    """An upload into `path`, refused (413) past `limit` bytes; → its size."""
    size = 0
    with path.open("wb") as fh:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
            fh.write(chunk)
    return size
