"""The declared image preprocessing writes a sample into a preallocated row exactly as it returns one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mtt.evaluator.inputs import image_sample
from mtt.evaluator.preprocess import Preprocess


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), "RGB")
    return [Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L"), rgb, rgb.convert("P")]


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("layout", ["flat", "nchw", "nhwc"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_into_a_row_equals_the_returned_sample(mode: str, layout: str, dtype: str) -> None:
    prep = Preprocess(size=(6, 5), mode=mode, layout=layout, dtype=dtype, scale=1 / 58.3, offset=-0.485)
    for img in _images():
        expected = np.asarray(img.convert(mode), dtype=np.float32)
        expected = (expected if expected.ndim == 3 else expected[:, :, None]) * np.float32(prep.scale) + \
            np.float32(prep.offset)
        expected = {"flat": expected.reshape(-1), "nchw": expected.transpose(2, 0, 1), "nhwc": expected}[layout]
        got = prep.to_array(img)
        rows = np.full((2, *prep.sample_shape()), np.nan, dtype=dtype)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        buf.seek(0)
        image_sample(prep, buf, "item 1", rows[1])
        assert got.dtype == np.dtype(dtype) and got.shape == prep.sample_shape()
        assert np.array_equal(got, expected.astype(dtype))
        assert np.array_equal(rows[1], got)
        assert np.isnan(rows[0]).all()  # only its own row is written
