"""A data-quality check: images much wider than tall (or the reverse) lose most of their content when a model's
preprocessing resizes them to a square. Flags them; never refuses them."""

from __future__ import annotations

import io
from collections.abc import Sequence

from mlife_shared.plugins.seams.cleaners import Context, Finding, Item


def _size(item: Item) -> tuple[int, int] | None:
    if item.width and item.height:
        return item.width, item.height
    if item.data is None:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(item.data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - an unreadable image is another cleaner's finding, not this one's
        return None


class AspectRatio:
    name = "aspect-ratio"
    api = ">=1,<2"
    description = "flags images more than 4 times wider than tall, or taller than wide"
    max_ratio = 4.0

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        findings = []
        for item in items:
            size = _size(item) if item.media_type == "image" else None
            if size is None or min(size) == 0:
                continue
            ratio = max(size) / min(size)
            if ratio > self.max_ratio:
                shape = "wide" if size[0] > size[1] else "tall"
                findings.append(Finding(
                    self.name, "extreme_aspect_ratio", "warning",
                    f"the image is {size[0]}x{size[1]}, {ratio:.1f} times as {shape}: a square resize squashes it "
                    f"(crop or pad it, or drop it from training)", md5=item.md5, position=item.position))
        return findings
