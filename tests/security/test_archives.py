"""Archive bombs are refused by expanded size and ratio, streaming (before they are decompressed): a ~300 KB
tar.gz expanding to ~300 MB, a bare gzip of zeros (one gzip member, no tar in it), many moderate members
adding up; a normal archive is accepted. MTT's code uploads (multipart create and POST /tasks/{id}/code)
and DAM's archive upload, on real PostgreSQL and a local object store."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate

SECRET = "archives-test-secret-" + uuid.uuid4().hex
MIB = 1024 * 1024


class Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.n = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        k = min(len(b), self.n)
        b[:k] = bytes(k)
        self.n -= k
        return k


def tar_gz(members: dict[str, int | bytes]) -> bytes:
    """A tar.gz built as a stream (members of zeros are never held in memory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = content if isinstance(content, int) else len(content)
            tf.addfile(info, Zeros(content) if isinstance(content, int) else io.BytesIO(content))
    return buf.getvalue()


def gzip_of_zeros(n: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(bytes(MIB)) for _ in range(n // MIB)]
    return b"".join([*parts, c.flush()])


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    out = {"tar.gz of one 300 MB member": tar_gz({"main.py": b"print(1)\n", "data.bin": 300 * MIB}),
           "gzip of 300 MB of zeros": gzip_of_zeros(300 * MIB),
           "tar.gz of 30 members of 10 MB": tar_gz({"main.py": b"print(1)\n",
                                                    **{f"d/{i}.bin": 10 * MIB for i in range(30)}})}
    for name, data in out.items():
        assert len(data) < 400 * 1024, (name, len(data))  # ~300 KB on the wire
    return out


NORMAL = tar_gz({"main.py": b"print('hello')\n", "pkg/helper.py": b"def f():\n    return 1\n" * 50})


@pytest.fixture
async def mtt(make_database, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    from mtt.app import SPEC
    from mtt.config import Settings

    tag = uuid.uuid4().hex[:10]
    settings = Settings(environment="test", database_url=await make_database("mtt.migrations"), nats_url=nats_url,
                        identity_secret=SECRET, home=tmp_path, object_store_path=tmp_path / "objects",
                        work_root=tmp_path / "work", runs_stream=f"MLIFE_MTT_RUNS_A{tag.upper()}",
                        runs_subject_prefix=f"mtt_a{tag}.run")
    store = make_store(settings)
    await store.put("dam/files/x", iterate(b"x"))
    manifest = json.dumps({"md5": hashlib.md5(b"x").hexdigest(), "key": "dam/files/x", "path": "x.png",
                           "annotation": None, "label": "a", "extra": {}, "media_type": "image"}) + "\n"
    await store.put("dam/datasets/d/manifest.jsonl", iterate(manifest.encode()))
    app = create_app(SPEC, settings)
    identity = {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "erin", "engineer"), SECRET, ttl_seconds=600)}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mtt/api/mtt", headers=identity,
                                     timeout=120) as client:
            yield client


TASK = {"kind": "train", "command": "python main.py",
        "datasets": [{"dataset_id": str(uuid.uuid4()), "manifest_key": "dam/datasets/d/manifest.jsonl"}]}


async def test_mtt_refuses_bombs_at_upload_and_takes_a_normal_archive(mtt: httpx.AsyncClient,
                                                                      bombs: dict[str, bytes]) -> None:
    draft = await mtt.post("/tasks", json=TASK)
    assert draft.status_code == 201, draft.text
    tid = draft.json()["id"]
    for name, bomb in bombs.items():
        r = await mtt.post(f"/tasks/{tid}/code", content=bomb)
        assert r.status_code == 422, (name, r.text)
        assert "compression bomb" in r.json()["detail"], (name, r.text)
        r = await mtt.post("/tasks", files={"task": (None, json.dumps(TASK)),
                                            "code": ("code.tar.gz", bomb, "application/gzip")})
        assert r.status_code == 422 and "compression bomb" in r.json()["detail"], (name, r.text)
    assert (await mtt.get(f"/tasks/{tid}")).json()["code_location"] is None
    assert len((await mtt.get("/tasks")).json()) == 1  # the refused multipart creates wrote nothing
    r = await mtt.post(f"/tasks/{tid}/code", content=NORMAL)
    assert r.status_code == 201 and r.json()["status"] == "ready", r.text
    r = await mtt.post("/tasks", files={"task": (None, json.dumps(TASK)),
                                        "code": ("code.tar.gz", NORMAL, "application/gzip")})
    assert r.status_code == 201 and r.json()["code_location"].startswith("store:"), r.text


async def test_a_zip_bomb_is_still_refused(mtt: httpx.AsyncClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", "print(1)\n")
        with zf.open("data.bin", "w") as out:
            for _ in range(50):
                out.write(bytes(MIB))
    draft = (await mtt.post("/tasks", json=TASK)).json()
    r = await mtt.post(f"/tasks/{draft['id']}/code", content=buf.getvalue())
    assert r.status_code == 422 and "bomb" in r.json()["detail"], r.text


async def test_dam_refuses_tar_bombs(dam: httpx.AsyncClient, bombs: dict[str, bytes]) -> None:  # noqa: F811
    for name, bomb in bombs.items():
        r = await dam.post("/files/archive", content=bomb)
        assert r.status_code in (413, 422) and "expands" in r.json()["detail"], (name, r.text)
    ok = await dam.post("/files/archive", content=NORMAL)
    assert ok.status_code == 201 and len(ok.json()["files"]) == 2, ok.text
