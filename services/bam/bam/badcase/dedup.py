"""When two reports are the same badcase.

Rule (also in services/bam/README.md):
1. Exact: same ML system function (case- and space-insensitive) + same data content (the MD5 of the
   data; for references without content, the normalised reference; a tabular badcase's feature row,
   compared canonically) + same ground truth + same
   prediction (JSON compared canonically: key order and whitespace do not matter, a bare label equals
   {"label": label}) → one badcase.
2. Near-duplicate images: same function + ground truth + prediction, and the 64-bit difference hash
   (dHash) of the images differs in at most NEAR_DUPLICATE_BITS bits (≈ 90 % of the bits equal:
   re-encoded, resized or lightly edited copies of one picture) → the same badcase.
3. Audio/video segments: a report with a time segment (seconds) or a frame range is the same badcase as a
   segmented badcase with the same function, data, ground truth and prediction (its `segment_base`: rule 1's
   fingerprint) whose segment OVERLAPS it (closed intervals: touching ends overlap); seconds are compared with
   seconds, frames with frames. Disjoint segments of one file are different badcases, and a report without a
   segment never merges with a segmented one (the whole recording is another case than a moment of it). The merged
   badcase's segment becomes the UNION (the smallest interval holding both), each occurrence keeps the segment it
   was reported with; when a report overlaps several badcases it joins the one it overlaps most (earliest first on
   a tie), they are not fused. Reports of one base are serialised (a transaction lock on the base) so two racing
   overlapping reports make one badcase.
4. The description never forks a badcase: every occurrence keeps its own wording; the badcase keeps
   the first one, normalised (NFKC, lower case, collapsed whitespace) for search.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import unicodedata
from typing import Any

from PIL import Image

NEAR_DUPLICATE_BITS = 6
MAX_IMAGE_PIXELS = 50_000_000


def normalise_text(text: str) -> str:
    # A bulk import normalises the same functions and labels over and over: short texts are remembered.
    return _normalise_short(text) if len(text) <= 200 else _normalise(text)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", text).strip()


_SPACES = re.compile(r"\s+")
_normalise_short = functools.lru_cache(maxsize=4096)(_normalise)


def normalise_function(function: str) -> str:
    return normalise_text(function)


def canonical(value: Any) -> str:
    """One string for equal JSON values; a bare label and {"label": label} are equal."""
    if isinstance(value, dict) and len(value) == 1 and "label" in value:
        value = value["label"]
    if isinstance(value, str):
        return _canonical_short(value) if len(value) <= 200 else _canonical_text(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_text(value: str) -> str:
    return json.dumps(normalise_text(value), ensure_ascii=False)


_canonical_short = functools.lru_cache(maxsize=4096)(_canonical_text)  # labels repeat on every row of an import


def label_of(value: Any) -> str | None:
    """The class label of a ground truth or prediction, when it has one (for filters and confusion tables)."""
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, (int, float, bool)):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("label"), (str, int)):
        return str(value["label"])[:200]
    return None


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def data_key(md5: str | None, refs: list[dict[str, Any]], features: dict[str, Any] | None = None) -> str:
    key = "md5:" + md5.lower() if md5 else "refs:" + "|".join(sorted(f"{r['kind']}:{r['value']}" for r in refs))
    if features is not None:  # appended, so the keys of badcases without features stay what they were
        key += "|features:" + json.dumps(features, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return key


def fingerprint(function: str, md5: str | None, refs: list[dict[str, Any]], ground_truth: Any,
                prediction: Any, features: dict[str, Any] | None = None) -> str:
    return keys(function, md5, refs, ground_truth, prediction, features)[0]


def keys(function: str, md5: str | None, refs: list[dict[str, Any]], ground_truth: Any, prediction: Any,
         features: dict[str, Any] | None = None) -> tuple[str, str]:
    """(`fingerprint`, `match_key`): each part computed once, both keys defined here only."""
    name, truth, predicted = normalise_function(function), canonical(ground_truth), canonical(prediction)
    return _sha(name, data_key(md5, refs, features), truth, predicted), _sha(name, truth, predicted)


def match_key(function: str, ground_truth: Any, prediction: Any) -> str:
    """What near-duplicate candidates share: everything but the data."""
    return keys(function, None, [], ground_truth, prediction)[1]


def dhash(image_bytes: bytes) -> int | None:
    """64-bit difference hash of an image, as a signed 64-bit integer (fits BIGINT); None if not an image."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    px = list(small.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def hamming(a: int, b: int) -> int:
    return bin((a ^ b) & ((1 << 64) - 1)).count("1")


def segment_fingerprint(base: str, seconds: tuple[float, float] | None, frames: tuple[int, int] | None) -> str:
    """The unique fingerprint of a segmented badcase: its base and the segment it was first reported with."""
    return _sha(base, "segment", json.dumps([seconds, frames]))


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """How much two closed intervals overlap (0 when they only touch); negative when disjoint."""
    return min(a[1], b[1]) - max(a[0], b[0])


def lock_id(base: str) -> int:
    """A signed 64-bit advisory lock id for a segment base."""
    value = int(base[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value
