"""DAM in the tests: files, archives and tables to upload, its settings, DAM served over real HTTP."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import tarfile
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from PIL import Image

from dam.app import SPEC
from dam.config import Settings
from mlife_shared.app import create_app
from tests.support.apps import serve_app
from tests.support.auth import SECRET
from tests.support.outbox import outbox_events

__all__ = ["WEBHOOK_SECRET", "WINE_COLUMNS", "dam_settings", "md5", "outbox_events", "png", "random_bytes", "serve_dam",
           "tar_bytes", "to_csv", "zip_bytes"]

WEBHOOK_SECRET = "webhook-secret-" + uuid.uuid4().hex


def png(width: int = 8, height: int = 6, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", (width, height), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name) if name.startswith("/") else name, data)
    return buf.getvalue()


def tar_bytes(entries: dict[str, bytes], *, links: dict[str, str] | None = None, gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def dam_settings(dam_db: str, nats_url: str, tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(environment="test", database_url=dam_db, nats_url=nats_url, identity_secret=SECRET,
                                   home=tmp_path, object_store_path=tmp_path / "objects")
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


async def serve_dam(settings: Settings, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """DAM served over real HTTP, so Label Studio can call its webhook."""
    async for client in serve_app(create_app(SPEC, settings), port, "dam"):
        yield client


WINE_COLUMNS = ["alcohol", "malic_acid", "ash", "colour", "label"]


def to_csv(header: list[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()
