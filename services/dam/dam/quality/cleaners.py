"""DAM's built-in cleaners (the `mlife.cleaners` entry points in DAM's pyproject): unreadable image, blank or
near-constant image, empty or tiny file, label outside the class list, near duplicates (dHash over Pillow)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator, Sequence

from PIL import Image, ImageStat

from mlife_shared.plugins.seams.cleaners import Context, Finding, Item

API = ">=1,<2"
# A decompression bomb is unreadable for a cleaner too (Pillow's own limit, as an error instead of a warning).
MAX_PIXELS = 64_000_000


def decoded(item: Item) -> Image.Image | None:
    """The item's image, loaded; None when it is no image, has no content here, or does not decode."""
    if item.media_type != "image" or item.data is None:
        return None
    try:
        img = Image.open(io.BytesIO(item.data))
        if img.width * img.height > MAX_PIXELS:
            return None
        img.load()
        return img
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on bad content; the unreadable cleaner reports it
        return None


def images(items: Sequence[Item]) -> Iterator[tuple[Item, Image.Image]]:
    for item in items:
        img = decoded(item)
        if img is not None:
            yield item, img


class Unreadable:
    name = "unreadable"
    api = API
    description = "an image that does not decode (truncated, corrupt, or too many pixels)"

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        out = []
        for item in items:
            if item.media_type == "image" and item.data is not None and decoded(item) is None:
                out.append(Finding(self.name, "unreadable_image", "error",
                                   "the image does not decode (truncated or corrupt, or larger than "
                                   f"{MAX_PIXELS:,} pixels): re-export or replace it", md5=item.md5,
                                   position=item.position))
        return out


class Blank:
    name = "blank"
    api = API
    description = "a blank or near-constant image (its pixels' standard deviation below a threshold)"
    threshold = 2.0  # grey levels of 255

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        out = []
        for item, img in images(items):
            gray = img.convert("L")
            gray.thumbnail((128, 128))
            stat = ImageStat.Stat(gray)
            spread = float(stat.stddev[0])
            if spread < self.threshold:
                lo, hi = gray.getextrema()
                what = "blank (one value)" if lo == hi else "near-constant"
                out.append(Finding(self.name, "blank_image", "warning",
                                   f"the image is {what}: pixel spread {spread:.2f} of 255, mean {stat.mean[0]:.0f}; "
                                   "check the capture or drop it", md5=item.md5, position=item.position))
        return out


class TinyFile:
    name = "tiny_file"
    api = API
    description = "an empty or tiny file, or an image of a few pixels"
    min_bytes = 64
    min_side = 8

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        out = []
        for item in items:
            if item.md5 is None:
                continue
            if item.size == 0:
                out.append(Finding(self.name, "empty_file", "error", "the file is empty (0 bytes)", md5=item.md5,
                                   position=item.position))
            elif item.size < self.min_bytes:
                out.append(Finding(self.name, "tiny_file", "warning",
                                   f"the file has only {item.size} bytes (under {self.min_bytes}): probably not "
                                   "the content meant", md5=item.md5, position=item.position))
            elif item.media_type == "image" and item.width and item.height and min(item.width, item.height) < self.min_side:
                out.append(Finding(self.name, "tiny_image", "warning",
                                   f"the image is {item.width}x{item.height} pixels (a side under {self.min_side})",
                                   md5=item.md5, position=item.position))
        return out


class LabelOutsideClasses:
    name = "label_outside_classes"
    api = API
    description = "a row's label that is not in the class list"

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        if context.classes is None:
            return []
        classes = set(context.classes)
        out = []
        for item in items:
            unknown = sorted({lb for lb in item.labels if lb not in classes})
            if unknown:
                out.append(Finding(self.name, "label_outside_classes", "error",
                                   f"the label{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown[:10]))} "
                                   f"{'are' if len(unknown) > 1 else 'is'} not in the class list "
                                   f"({', '.join(sorted(classes)[:20]) or 'empty'}): fix the label or the list",
                                   md5=item.md5, position=item.position))
        return out


def dhash(img: Image.Image) -> int:
    """The 64-bit difference hash: a 9x8 greyscale thumbnail, one bit per horizontally adjacent pair."""
    small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = list(small.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return bits


BLOCKS = ((0, 13), (13, 26), (26, 39), (39, 52), (52, 64))


def near_pairs(hashes: dict[str, int], distance: int) -> dict[str, set[str]]:
    """MD5 -> the other MD5s whose hashes differ in at most `distance` (<= 4) bits. Two such hashes agree on one
    of five blocks at least (pigeonhole), so candidates are found by block, not by comparing every pair."""
    by_block: dict[tuple[int, int], list[str]] = defaultdict(list)
    for md5, h in hashes.items():
        for i, (lo, hi) in enumerate(BLOCKS):
            by_block[(i, (h >> lo) & ((1 << (hi - lo)) - 1))].append(md5)
    twins: dict[str, set[str]] = defaultdict(set)
    for group in by_block.values():
        for n, a in enumerate(group):
            for b in group[n + 1:]:
                if b not in twins[a] and (hashes[a] ^ hashes[b]).bit_count() <= distance:
                    twins[a].add(b)
                    twins[b].add(a)
    return twins


class NearDuplicates:
    name = "near_duplicates"
    api = API
    description = "images that look alike though their bytes differ (dHash, at most 4 of 64 bits apart)"
    distance = 4

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        hashes: dict[str, int] = {}
        first: dict[str, Item] = {}
        for item, img in images(items):
            if item.md5 is not None and item.md5 not in hashes:
                hashes[item.md5] = dhash(img)
                first[item.md5] = item
        out = []
        for md5, others in sorted(near_pairs(hashes, self.distance).items()):
            if not others:
                continue
            related = tuple(sorted(others))
            names = ", ".join(first[o].path or o for o in related[:5])
            out.append(Finding(self.name, "near_duplicate", "warning",
                               f"looks like {len(related)} other image{'s' if len(related) > 1 else ''} ({names}): "
                               "keep one, or keep them in the same split", md5=md5, position=first[md5].position,
                               related=related))
        return out
