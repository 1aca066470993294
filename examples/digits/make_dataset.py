"""Write scikit-learn's digits (8x8, values 0..16) as grayscale PNGs plus a DAM-style manifest.

    python examples/digits/make_dataset.py OUT_DIR [--limit N]

Each pixel is stored as round(v * 255 / 16); the declared preprocessing (README) maps it back to 0..1.
The manifest (JSON lines) has what MTT reads from DAM: md5, key (here: a relative file path), label.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def png_bytes(image: np.ndarray) -> bytes:
    pixels = np.clip(np.rint(image * 255.0 / 16.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def digits_pngs(limit: int | None = None) -> list[tuple[bytes, str]]:
    """(png bytes, label) for every digit; identical images are kept once (DAM dedups by MD5)."""
    d = load_digits()
    seen: set[str] = set()
    out = []
    for image, label in zip(d.images, d.target, strict=True):
        data = png_bytes(image)
        md5 = hashlib.md5(data).hexdigest()
        if md5 in seen:
            continue
        seen.add(md5)
        out.append((data, str(int(label))))
        if limit and len(out) >= limit:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for data, label in digits_pngs(args.limit):
        md5 = hashlib.md5(data).hexdigest()
        (args.out / f"{md5}.png").write_bytes(data)
        lines.append(json.dumps({"md5": md5, "key": f"{md5}.png", "label": label, "media_type": "image"}))
    (args.out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} images in {args.out}")


if __name__ == "__main__":
    main()
