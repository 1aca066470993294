from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from dam.quality.schemas import FindingRead


class FileRead(BaseModel):
    md5: str
    size: int
    media_type: str = Field(description="image, audio, video, text, json, document, archive or binary (from content)")
    content_type: str
    name: str | None
    width: int | None
    height: int | None
    duration: float | None = Field(None, description="Seconds, of an audio or video file (probed at upload)")
    sample_rate: int | None = Field(None, description="Audio sample rate in Hz")
    channels: int | None = Field(None, description="Audio channels")
    fps: float | None = Field(None, description="Video frame rate")
    frame_count: int | None = Field(None, description="Video frames")
    codec: str | None = Field(None, description="Audio/video codec")
    key: str = Field(description="Object key of the content")
    created_at: datetime
    findings: list[FindingRead] | None = Field(None, description="What the cleaners found at upload (flags: the "
                                                                 "file is stored all the same); None: not checked")


class UploadRead(FileRead):
    duplicate: bool = Field(description="True when this content was already stored")
    path: str | None = None


class ArchiveRead(BaseModel):
    files: list[UploadRead]
    count: int
    new: int
    duplicates: int


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    md5s: list[str] = Field(max_length=100_000)


class CheckRead(BaseModel):
    existing: list[str]
    missing: list[str]
