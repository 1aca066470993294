"""Generate a second image function for MLife: 32x32 grayscale shapes (circle, square, triangle) with random
size, a little jitter and speckle noise — a set of another size than the digits, so that two image functions live side by side.

    python examples/shapes/make_dataset.py OUT_DIR [--count N] [--seed S]

Writes OUT_DIR/<md5>.png and OUT_DIR/shapes.jsonl (a DAM document: md5, annotation).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 32
CLASSES = ("circle", "square", "triangle")


def shape_png(kind: str, rnd: random.Random) -> bytes:
    img = Image.new("L", (SIZE, SIZE), color=rnd.randint(0, 60))
    draw = ImageDraw.Draw(img)
    r = rnd.randint(7, 12)
    cx, cy = SIZE // 2 + rnd.randint(-2, 2), SIZE // 2 + rnd.randint(-2, 2)
    shade = rnd.randint(150, 255)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shade)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=shade)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=shade)
    for _ in range(rnd.randint(20, 80)):  # speckle noise: the long tail of hard cases
        draw.point((rnd.randrange(SIZE), rnd.randrange(SIZE)), fill=rnd.randint(0, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def shapes_pngs(count: int = 450, seed: int = 7) -> list[tuple[bytes, str]]:
    """(png bytes, label), `count` images spread evenly over the classes; identical images kept once."""
    rnd = random.Random(seed)
    seen: set[str] = set()
    out = []
    for i in range(count):
        kind = CLASSES[i % len(CLASSES)]
        data = shape_png(kind, rnd)
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - a content address, as DAM's
        if md5 not in seen:
            seen.add(md5)
            out.append((data, kind))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=450)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for data, label in shapes_pngs(args.count, args.seed):
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324
        (args.out / f"{md5}.png").write_bytes(data)
        rows.append(json.dumps({"md5": md5, "annotation": label}))
    (args.out / "shapes.jsonl").write_text("\n".join(rows) + "\n")
    print(f"{len(rows)} images in {args.out}")


if __name__ == "__main__":
    main()
