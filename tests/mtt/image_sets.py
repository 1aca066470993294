"""Image sets with structured ground truth (masks, keypoints) as DAM writes them, and what BAM files from a testing
task's outcomes — for the segmentation and keypoint evaluator tests."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

import numpy as np
from PIL import Image

from mlife_shared.db import Database
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate
from mtt.config import Settings


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


async def put_file(settings: Settings, data: bytes) -> str:
    """A file under dam/files/<md5>, as DAM stores an upload; → its md5."""
    md5 = hashlib.md5(data).hexdigest()
    await make_store(settings).put(f"dam/files/{md5}", iterate(data))
    return md5


async def put_image_set(settings: Settings, images: list[np.ndarray], annotations: list[Any]) -> tuple[str, str]:
    """Each image a DAM file with its annotation in a JSON-lines manifest; → (dataset id, manifest key)."""
    lines = []
    for pixels, ann in zip(images, annotations, strict=True):
        md5 = await put_file(settings, png_bytes(pixels))
        lines.append(json.dumps({"md5": md5, "key": f"dam/files/{md5}", "path": f"{md5}.png",
                                 "media_type": "image", "annotation": ann}))
    ds = str(uuid.uuid4())
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await make_store(settings).put(key, iterate(("\n".join(lines) + "\n").encode()))
    return ds, key


async def put_model(settings: Settings, name: str, model: bytes) -> dict[str, str]:
    key = f"models/{name}/model.onnx"
    await make_store(settings).put(key, iterate(model))
    return {"name": name, "version": "1", "object_key": key}


async def filed_badcases(bam_db: str) -> list[dict[str, Any]]:
    """The badcases BAM filed from testing: their prediction, ground truth and data."""
    from sqlalchemy import select

    from bam.badcase.models import Badcase

    db = Database(bam_db)
    try:
        async with db.transaction() as session:
            rows = (await session.execute(select(Badcase.prediction, Badcase.ground_truth, Badcase.data_md5)
                                          .where(Badcase.source == "testing"))).all()
    finally:
        await db.dispose()
    return [{"prediction": p, "ground_truth": g, "data_md5": d} for p, g, d in rows]
