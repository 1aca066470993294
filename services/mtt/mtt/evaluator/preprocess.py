"""Declared preprocessing: how a dataset item becomes a model input. It is never guessed from the model
or the data: it comes from the task's `params.preprocess`, or from the model's own ONNX metadata
(`mlife.preprocess`, a JSON object written by the training code)."""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlife_shared.errors import Unprocessable

METADATA_KEY = "mlife.preprocess"


class InvalidPreprocess(Unprocessable):
    """The declared preprocessing is invalid or does not match the model or the data."""


class Preprocess(BaseModel):
    """pixel → `pixel * scale + offset`, images `size` = [height, width] in `mode`, laid out as `layout`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: tuple[int, int] = Field(description="[height, width] of every image")
    mode: Literal["L", "RGB"] = "L"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    layout: Literal["flat", "nchw", "nhwc"] = "flat"
    dtype: Literal["float32", "float64"] = "float32"
    resize: bool = Field(False, description="resize images of another size (else such an image is an error)")
    input_name: str | None = None
    label_output: str | None = Field(None, description="output holding class labels; default: the first "
                                                       "integer or string output")
    classes: list[str] | None = Field(None, description="index → class, for a model that outputs scores only")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def sample_shape(self) -> tuple[int, ...]:
        h, w = self.size
        c = self.channels
        if self.layout == "flat":
            return (h * w * c,)
        if self.layout == "nchw":
            return (c, h, w)
        return (h, w, c)

    def to_array(self, image: Any) -> np.ndarray:
        """A PIL image → one sample (without the batch dimension)."""
        from PIL import Image

        img = image.convert(self.mode)
        h, w = self.size
        if img.size != (w, h):
            if not self.resize:
                raise InvalidPreprocess(f"an image is {img.size[1]}x{img.size[0]} (h x w); the declared size is "
                                        f"{h}x{w} (set preprocess.resize to resize)")
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        arr = arr * np.float32(self.scale) + np.float32(self.offset)
        if self.layout == "flat":
            arr = arr.reshape(-1)
        elif self.layout == "nchw":
            arr = arr.transpose(2, 0, 1)
        return arr.astype(self.dtype, copy=False)


def parse_preprocess(value: Any, *, where: str) -> Preprocess:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidPreprocess(f"{where}: not JSON") from exc
    try:
        return Preprocess.model_validate(value)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidPreprocess(f"{where}: {errs}") from exc


def check_input_shape(prep: Preprocess, model_shape: list[int | str | None], input_name: str) -> None:
    """The model's input (after its batch dimension) must accept the declared sample shape."""
    sample = prep.sample_shape()
    if len(model_shape) != len(sample) + 1:
        raise InvalidPreprocess(f"the model input {input_name!r} has shape {model_shape}; the declared preprocessing "
                                f"gives samples of shape [batch, {', '.join(map(str, sample))}]")
    for got, want in zip(model_shape[1:], sample):
        if isinstance(got, int) and got > 0 and got != want:
            raise InvalidPreprocess(f"the model input {input_name!r} has shape {model_shape}; the declared "
                                    f"preprocessing gives [batch, {', '.join(map(str, sample))}]")
