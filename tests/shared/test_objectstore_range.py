"""Ranged reads on both backends (the local folder and a real SeaweedFS S3): what HTTP Range serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlife_shared.objectstore import LocalObjectStore, ObjectNotFound, ObjectStore, ScopedStore
from mlife_shared.objectstore.base import iterate, read_all
from tests.shared.test_objectstore import key, s3_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return LocalObjectStore(tmp_path / "objects") if request.param == "local" else s3_store()


async def test_offset_and_length_read_that_slice(store: ObjectStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    k = key()
    await store.put(k, iterate(data))
    for offset, length in ((0, 10), (5, 1), (1024 * 1024 - 3, 2 * 1024 * 1024 + 1), (len(data) - 4, 4)):
        assert await read_all(await store.get(k, offset=offset, length=length, chunk_size=65536)) == \
            data[offset:offset + length]
    assert await read_all(await store.get(k, offset=len(data) - 100)) == data[-100:]  # to the end
    assert await read_all(await store.get(k, offset=len(data) - 2, length=50)) == data[-2:]  # cut at the end
    assert await read_all(await store.get(k, offset=7, length=0)) == b""
    await store.delete(k)


async def test_scoped_ranged_read_and_missing_object(store: ObjectStore) -> None:
    scoped = ScopedStore(store, "range-test")
    await scoped.put("a/b.bin", iterate(b"0123456789"))
    assert await read_all(await scoped.get("a/b.bin", offset=3, length=4)) == b"3456"
    with pytest.raises(ObjectNotFound):
        await scoped.get("a/missing.bin", offset=1, length=2)
    with pytest.raises(ValueError):
        await scoped.get("a/b.bin", offset=-1)
    await scoped.delete("a/b.bin")
