"""Declared preprocessing: how a dataset item becomes a model input. It is never guessed from the model
or the data: it comes from the task's `params.preprocess`, or from the model's own ONNX metadata
(`mlife.preprocess`, a JSON object written by the training code).

Three kinds: `image` (files decoded with `size`, `mode`, `scale`/`offset`, `layout`; the default, so an image
preprocess written before kinds existed keeps working), `table` (rows with `features`: the declared `columns`,
in order, make the input vector) and `tensor` (only `.npy`/`.npz` files, fed as they are). Tensor files need no
declaration and may sit next to images or rows in any set. `target` says how predictions are scored."""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlife_shared.errors import Unprocessable
from mlife_shared.onnx_safety import TensorInfo

FLOATS = ("float16", "float32", "float64")

METADATA_KEY = "mlife.preprocess"


class InvalidPreprocess(Unprocessable):
    """The declared preprocessing is invalid or does not match the model or the data."""


class Preprocess(BaseModel):
    """Images: pixel → `pixel * scale + offset`, `size` = [height, width] in `mode`, laid out as `layout`.
    Tables: `columns` → one float vector per row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["image", "table", "tensor"] = "image"
    size: tuple[int, int] | None = Field(None, description="[height, width] of every image (kind image)")
    columns: list[str] | None = Field(None, description="feature columns, in the model's input order (kind table)")
    target: Literal["classification", "regression"] = "classification"
    tolerance: float = Field(0.0, ge=0, description="regression: a sample with |prediction - truth| > tolerance "
                                                    "is a misprediction")
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

    @model_validator(mode="after")
    def _complete(self) -> Preprocess:
        if self.kind == "image" and self.size is None:
            raise ValueError("an image preprocess needs size [height, width]")
        if self.kind == "table":
            if not self.columns:
                raise ValueError("a table preprocess needs columns (the model's input order)")
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("columns are repeated")
        elif self.columns is not None:
            raise ValueError(f"columns are for kind table (this one is {self.kind})")
        return self

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def sample_shape(self) -> tuple[int, ...]:
        if self.kind == "table":
            return (len(self.columns or ()),)
        if self.size is None:
            raise InvalidPreprocess("tensor files have no declared sample shape")
        h, w = self.size
        c = self.channels
        if self.layout == "flat":
            return (h * w * c,)
        if self.layout == "nchw":
            return (c, h, w)
        return (h, w, c)

    def sample_size(self) -> tuple[int, int]:
        if self.size is None:
            raise InvalidPreprocess(f"preprocessing of kind {self.kind} takes no images")
        return self.size

    def row(self, features: dict[str, Any], where: str) -> np.ndarray:
        """A table row → one float64 sample; an empty cell is NaN (the model's own imputer may handle it)."""
        out = np.empty(len(self.columns or ()), dtype=np.float64)
        for j, col in enumerate(self.columns or ()):
            if col not in features:
                raise InvalidPreprocess(f"{where} has no column {col!r} (declared columns: {self.columns})")
            v = features[col]
            if v is None or v == "":
                out[j] = np.nan
                continue
            try:
                out[j] = float(v)
            except (TypeError, ValueError) as exc:
                raise InvalidPreprocess(f"{where}: column {col!r} is {v!r}, not a number") from exc
        return out

    def to_array(self, image: Any, out: np.ndarray | None = None) -> np.ndarray:
        """A PIL image → one sample (without the batch dimension), written into `out` when given (an array of
        the sample's shape and dtype: no temporary arrays on the evaluator's path)."""
        # convert() to the mode the image already has is a copy: skip it
        img = image if image.mode == self.mode else image.convert(self.mode)
        h, w = self.sample_size()
        if img.size != (w, h):
            if not self.resize:
                raise InvalidPreprocess(f"an image is {img.size[1]}x{img.size[0]} (h x w); the declared size is "
                                        f"{h}x{w} (set preprocess.resize to resize)")
            from PIL import Image

            img = img.resize((w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(img)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if self.layout == "flat":
            pixels = pixels.reshape(-1)
        elif self.layout == "nchw":
            pixels = pixels.transpose(2, 0, 1)
        if out is None or self.dtype != "float32":
            # float32 arithmetic, then the declared dtype (float64 samples hold the float32 values)
            arr: np.ndarray = np.multiply(pixels, np.float32(self.scale), dtype=np.float32)
            if self.offset:
                arr += np.float32(self.offset)
            arr = arr.astype(self.dtype, copy=False)
            if out is None:
                return arr
            out[...] = arr
            return out
        np.multiply(pixels, np.float32(self.scale), out=out, dtype=np.float32)
        if self.offset:
            out += np.float32(self.offset)
        return out


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
    if prep.kind == "tensor":
        return
    sample = prep.sample_shape()
    if len(model_shape) != len(sample) + 1:
        raise InvalidPreprocess(f"the model input {input_name!r} has shape {model_shape}; the declared preprocessing "
                                f"gives samples of shape [batch, {', '.join(map(str, sample))}]")
    for got, want in zip(model_shape[1:], sample, strict=False):
        if isinstance(got, int) and got > 0 and got != want:
            raise InvalidPreprocess(f"the model input {input_name!r} has shape {model_shape}; the declared "
                                    f"preprocessing gives [batch, {', '.join(map(str, sample))}]")


def main_input(prep: Preprocess, inputs: list[TensorInfo]) -> TensorInfo:
    """The model input the declared images or rows feed: `input_name`, else the only input; its shape must take
    the declared sample and its type be a float."""
    by_name = {t.name: t for t in inputs}
    name = prep.input_name or (inputs[0].name if len(inputs) == 1 else None)
    if name not in by_name:
        raise InvalidPreprocess(f"set preprocess.input_name to one of {sorted(by_name)}")
    info = by_name[name]
    check_input_shape(prep, info.shape, name)
    if info.dtype not in FLOATS:
        what = "rows" if prep.kind == "table" else "images"
        raise InvalidPreprocess(f"the model input {name!r} is {info.dtype}; the evaluator feeds {what} as floats")
    return info
