"""What the public event API's routes share: the point a replay starts from (webhooks and subscribers)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class ReplayRequest(BaseModel):
    """Where a replay starts: a time (every stream the subjects span), or one stream's sequence."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = Field(None, description="Re-deliver every matching event published since then "
                                        "(ISO 8601 with its offset); older than the streams keep: from their oldest")
    stream: str | None = Field(None, max_length=100, description="With `sequence`: re-deliver one stream from there")
    sequence: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_origin(self) -> ReplayRequest:
        if (self.since is None) == (self.stream is None and self.sequence is None):
            raise ValueError("give either `since` (an ISO time with its offset) or `stream` and `sequence`")
        if self.since is None and (self.stream is None or self.sequence is None):
            raise ValueError("`stream` and `sequence` go together")
        return self
