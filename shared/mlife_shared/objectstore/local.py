"""The embedded backend: a folder. Writes go to a temporary file beside the target and are renamed
into place, so a failed or interrupted upload leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from mlife_shared.objectstore.base import (
    Hasher,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    StoredObject,
    check_range,
    iterate,
    validate_key,
)


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey("the key escapes the store")
        return path

    async def put(self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None,
                  max_size: int | None = None, size: int | None = None) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher = Hasher(max_size, size)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in data:
                    hasher.update(chunk)
                    await asyncio.to_thread(fh.write, chunk) if len(chunk) > 1 << 20 else fh.write(chunk)
            hasher.finish()
            os.replace(tmp, path)
        except BaseException:
            with _suppress():
                os.unlink(tmp)
            raise
        return StoredObject(key=key, size=hasher.size, md5=hasher.hexdigest())

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                        md5: str | None = None) -> StoredObject:
        return await self.put(key, iterate(data), content_type=content_type)

    async def get(self, key: str, *, chunk_size: int = 1 << 20, offset: int = 0,
                  length: int | None = None) -> AsyncIterator[bytes]:
        check_range(offset, length)
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r}")
        return _read(path, chunk_size, offset, length)

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return ObjectInfo(key=key, size=path.stat().st_size)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        with _suppress():
            path.unlink()

    async def copy(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)
        if not src.is_file():
            raise ObjectNotFound(f"no object {source!r}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".copy-")
        os.close(fd)
        await asyncio.to_thread(shutil.copyfile, src, tmp)
        os.replace(tmp, dst)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        base = self.root
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if name.startswith((".upload-", ".copy-")):
                    continue
                key = Path(dirpath, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield key

    async def check(self) -> None:
        # One probe file per check: the embedded services share this folder and check it at the same time.
        probe = self.root / f".ready-{os.getpid()}-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink(missing_ok=True)


async def _read(path: Path, chunk_size: int, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    left = length
    with open(path, "rb") as fh:
        if offset:
            fh.seek(offset)
        while left is None or left > 0:
            chunk = await asyncio.to_thread(fh.read, chunk_size if left is None else min(chunk_size, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)
