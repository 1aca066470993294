import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ProductionRead(BaseModel):
    """A function's production model version: the one its badcase statuses follow."""

    function: str
    model_name: str
    model_version: str
    model_version_id: uuid.UUID | None = Field(description="MSM's id of the version")
    promoted_at: datetime = Field(description="When it became production (the time of `model.promoted`)")
