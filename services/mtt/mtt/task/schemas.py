from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.names import FunctionName


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_In):
    dataset_id: uuid.UUID
    manifest_key: str | None = Field(None, description="Object key of the manifest; default: from dataset.grouped")
    purpose: Literal["train", "test"] | None = None


class ModelRef(_In):
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    object_key: str = Field(min_length=1, description="Object key of the model file in the store")
    format: str = "onnx"
    model_version_id: uuid.UUID | None = None


class TaskCreate(_In):
    kind: Literal["train", "test"]
    name: str = Field("", max_length=200)
    datasets: list[DatasetRef] = Field(min_length=1, max_length=20)
    model: ModelRef | None = Field(None, description="The model to test (test tasks)")
    model_name: str | None = Field(None, description="Test the latest registered version of this model")
    function: FunctionName | None = Field(None, description="The function the task is for; default: the train "
                                 "dataset's (training) or the registered model's (testing)")
    code_location: str | None = Field(None, description="Absolute folder with the code (copied into the work dir); "
                                      "or upload the code (POST /tasks/{id}/code, or a `code` part here)")
    command: str | None = Field(None, max_length=4000, description="Run in the code folder, e.g. `python train.py`; "
                                "a test task without one uses the built-in evaluator; a task whose code is not "
                                "there yet stays a draft")
    params: dict[str, Any] = {}
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400)
    queue: str = Field("default", pattern=r"^[a-z0-9_-]{1,60}$")
    run: bool = Field(False, description="Queue it at once")


class TaskUpdate(_In):
    name: str | None = Field(None, max_length=200)
    function: FunctionName | None = None
    code_location: str | None = None
    command: str | None = Field(None, max_length=4000)
    params: dict[str, Any] | None = None
    model: ModelRef | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400)


class TaskRead(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    status: str
    owner: str | None
    origin: str
    datasets: list[dict[str, Any]]
    model: dict[str, Any] | None
    function: str | None
    set_kind: str | None = Field(None, description="A test task's set: badcase_test_set, test_split or other")
    model_version_id: uuid.UUID | None = None
    code_location: str | None
    command: str | None
    params: dict[str, Any]
    queue: str
    timeout_seconds: float | None
    attempt: int
    cancel_requested: bool
    runner_id: str | None
    mlflow_run_id: str | None
    mlflow_url: str | None = None
    metrics: dict[str, float]
    outcomes_key: str | None
    artifacts: list[dict[str, Any]]
    exit_code: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class LogChunk(BaseModel):
    task_id: uuid.UUID
    attempt: int
    offset: int
    next_offset: int
    text: str
    complete: bool = Field(description="The run has ended: no more log will come")


class StoredFile(BaseModel):
    key: str
    size: int
    md5: str
