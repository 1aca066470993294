from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VideoConversion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["frames", "clip"] = Field("frames", description="frames: PNG frames at `fps`; clip: a WebM (VP8) "
                                                                  "of the segment")
    fps: float = Field(1.0, gt=0, le=30, description="Frames per second of the segment kept (mode frames)")


class AudioConversion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int | None = Field(None, ge=1000, le=384_000, description="Rate of the WAV clip in Hz; "
                                                                           "null: the recording's own")


class ConversionSettings(BaseModel):
    """What an audio/video badcase with a segment becomes in its function's badcase test set."""

    model_config = ConfigDict(extra="forbid")

    video: VideoConversion = Field(default_factory=VideoConversion)
    audio: AudioConversion = Field(default_factory=AudioConversion)


class ConversionRead(ConversionSettings):
    function: str
    is_default: bool = Field(description="True when the function has no setting of its own (these are the defaults)")
    updated_by: str | None = None
    updated_at: datetime | None = None
