from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
import zipfile

from PIL import Image


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


async def outbox_events(db_url: str, subject: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    import json as _json

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT subject, envelope FROM outbox ORDER BY seq"))).all()
    finally:
        await engine.dispose()
    out = []
    for subj, env in rows:
        env = _json.loads(env) if isinstance(env, str) else env
        if subject is None or subj == subject:
            out.append(env)
    return out
