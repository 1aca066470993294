from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from msm.inputs import StrictIn


class PredictRequest(BaseModel):
    # Not StrictIn: the inputs are checked for finite numbers by the signature check, without a
    # second walk over every element on the hot path; nothing of a predict body reaches the database.
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(description="Input name → one sample, or a batch (one more leading axis)")
    client_id: str | None = Field(None, max_length=200)
    device_id: str | None = Field(None, max_length=200)


class PredictResponse(BaseModel):
    prediction_id: uuid.UUID
    deployment_id: uuid.UUID
    model_version_id: uuid.UUID
    model_name: str
    model_version: str
    batch: bool
    outputs: dict[str, Any]
    logged: bool = Field(description="The input and output were kept in the prediction log")
    latency_ms: float


class FeedbackRequest(StrictIn):
    prediction_id: uuid.UUID | None = Field(None, description="From the predict answer")
    model_version_id: uuid.UUID | None = Field(None, description="Which version served (from the predict answer)")
    inputs: dict[str, Any] | None = Field(
        None, description="The served input, one sample (a batch of one is taken as that sample); kept as a typed "
        "array file (.npy, .npz for several inputs). Needed unless `input_ref` is sent or the prediction was logged")
    input_ref: str | None = Field(None, max_length=1024,
                                  description="The served image's MD5 in DAM, or an object key of the served input")
    prediction: Any = None
    correct_label: Any = Field(description="What the model should have answered")
    client_id: str | None = Field(None, max_length=200)
    device_id: str | None = Field(None, max_length=200)


class FeedbackResponse(BaseModel):
    id: uuid.UUID
    deployment_id: uuid.UUID
    model_name: str
    model_version: str
    input_ref: str | None
