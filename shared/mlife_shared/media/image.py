"""Images and image-shaped tensors as PNG thumbnails."""

from __future__ import annotations

import io
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

from mlife_shared.media.errors import MediaError
from mlife_shared.media.info import MAX_IMAGE_PIXELS
from mlife_shared.media.source import Source, read_bytes

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

MAX_TENSOR_BYTES = 256 * 1024 * 1024


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.convert("RGBA" if img.mode in ("RGBA", "LA", "PA") else "RGB").save(out, format="PNG")
    return out.getvalue()


def image_thumbnail(data: Source, size: int = 256) -> bytes:
    """A PNG at most `size` pixels on its longer side (never enlarged); refuses decompression bombs."""
    from PIL import Image, UnidentifiedImageError
    raw = read_bytes(data)
    try:
        with warnings.catch_warnings():  # the size is checked below, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(raw))
        with opened:
            img: Image.Image = opened
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise MediaError(f"the image has {img.width}x{img.height} pixels, more than the "
                                 f"{MAX_IMAGE_PIXELS} this decodes")
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            img.thumbnail((size, size))
            return png(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, MediaError):
            raise
        raise MediaError(f"not a decodable image: {exc}") from exc


def load_tensor(data: Any) -> np.ndarray:
    """An array from an ndarray, `.npy` bytes or `.npz` bytes (its first array); never unpickles."""
    import numpy as np
    if isinstance(data, np.ndarray):
        return data
    raw = read_bytes(data)
    if len(raw) > MAX_TENSOR_BYTES:
        raise MediaError(f"the tensor file is larger than {MAX_TENSOR_BYTES} bytes")
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise MediaError(f"not a .npy/.npz array: {exc}") from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if not loaded.files:
                raise MediaError("the .npz holds no array")
            try:
                return np.asarray(loaded[loaded.files[0]])
            except (ValueError, OSError) as exc:
                raise MediaError(f"the .npz array cannot be read: {exc}") from exc
    return np.asarray(loaded)


def tensor_summary(data: Any) -> dict[str, Any]:
    """Shape, dtype and (for numbers) min/max of a tensor."""
    import numpy as np
    arr = load_tensor(data)
    out: dict[str, Any] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "min": None, "max": None}
    if arr.size and (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
        if finite.size:
            out["min"], out["max"] = finite.min().item(), finite.max().item()
    return out


def _as_hwc(arr: np.ndarray) -> np.ndarray | None:
    """HxW, HxWxC (C in 1,3,4), CxHxW, 1xCxHxW / 1xHxWxC as HxWxC; None when not image-shaped."""
    import numpy as np
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim != 3:
        return None
    if arr.shape[2] in (1, 3, 4) and not (arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4):
        return arr
    if arr.shape[0] in (1, 3, 4):
        return np.transpose(arr, (1, 2, 0))
    return None


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    import numpy as np
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    a[~np.isfinite(a)] = 0.0
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    if hi == lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.clip(np.rint((a - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def tensor_image(data: Any, size: int = 256) -> bytes | None:
    """A PNG thumbnail when the tensor's shape is an image (floats in 0..1 are scaled by 255, other
    ranges stretched to 0..255); None otherwise."""
    import numpy as np
    from PIL import Image
    arr = load_tensor(data)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        return None
    hwc = _as_hwc(arr)
    if hwc is None or hwc.shape[0] < 2 or hwc.shape[1] < 2 or hwc.shape[0] * hwc.shape[1] > MAX_IMAGE_PIXELS:
        return None
    u8 = hwc.astype(np.uint8) * 255 if hwc.dtype == np.bool_ else _to_uint8(hwc)
    channels = u8.shape[2]
    img = Image.fromarray(u8[:, :, 0] if channels == 1 else np.ascontiguousarray(u8),
                          mode={1: "L", 3: "RGB", 4: "RGBA"}[channels])
    img.thumbnail((size, size))
    return png(img)
