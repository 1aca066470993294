"""The payload of every event of ARCHITECTURE §2. Feature issues extend these with new optional
fields (a JSON-schema snapshot test shows every change in review); removing or retyping a field is a
new `version`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.events.envelope import EventData
from mlife_shared.events.registry import register

Id = uuid.UUID


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- BAM ---------------------------------------------------------------------------------------

@register
class BadcaseCreated(EventData):
    """Sent when a new badcase is recorded (a report that matched no existing badcase)."""

    subject = "badcase.created"
    producer = "bam"
    badcase_id: Id
    function: str = Field(description="ML system function the badcase belongs to")
    source: Literal["manual", "import", "testing", "serving"]
    model_name: str | None = None
    model_version: str | None = None
    priority: float | None = None
    task_id: Id | None = Field(None, description="The testing task whose run found it (source=testing)")
    deployment_id: Id | None = Field(None, description="The deployment whose prediction was flagged (source=serving)")
    model_version_id: Id | None = Field(None, description="MSM's id of the model version it was found on")


@register
class BadcaseMerged(EventData):
    """Sent when a report matched an existing badcase: its occurrence was kept and frequency went up."""

    subject = "badcase.merged"
    producer = "bam"
    badcase_id: Id
    occurrence_id: Id
    frequency: int = Field(ge=1)


@register
class BadcaseUpdated(EventData):
    """Sent when triage changed a badcase's status, priority or owner."""

    subject = "badcase.updated"
    producer = "bam"
    badcase_id: Id
    changes: dict[str, Any] = Field(description="Field name → new value, for the fields that changed")


class TestDataItem(_Part):
    badcase_id: Id
    data_refs: list[str] = Field([], description="DAM file MD5s, object keys or URLs of the badcase's data "
                                                 "(an image, or a served input tensor as a .npy/.npz file)")
    ground_truth: Any = Field(description="The label or structured value the model should have produced")
    function: str = Field(description="The function whose badcase test set the item joins")
    features: dict[str, Any] | None = Field(None, description="A tabular badcase's row: feature column → value "
                                                              "(instead of data files)")
    md5: str | None = Field(None, pattern=r"^[0-9a-f]{32}$",
                            description="The MD5 of the data its reference names, when the producer knows it: DAM "
                                        "takes the object once it exists, without reading it to hash it again. "
                                        "Without it, DAM hashes what the references name")
    segment_start: float | None = Field(None, ge=0, description="Audio/video: where in the recording the badcase "
                                                               "starts, in seconds")
    segment_end: float | None = Field(None, ge=0, description="Audio/video: where it ends, in seconds")
    frame_start: int | None = Field(None, ge=0, description="Video: the first frame of the badcase (0-based), "
                                                           "when it was reported as a frame range")
    frame_end: int | None = Field(None, ge=0, description="Video: its last frame (inclusive)")
    duration: float | None = Field(None, ge=0, description="The recording's duration in seconds, when known")


@register
class BadcaseTestDataRequested(EventData):
    """Sent when "add to test data" was applied to badcases; DAM appends them to the badcase test set."""

    subject = "badcase.test_data_requested"
    producer = "bam"
    request_id: Id
    items: list[TestDataItem]


# ---- DAM ---------------------------------------------------------------------------------------

@register
class DocumentCreated(EventData):
    """Sent when a document (a manifest of files + annotations) was imported or built, or got a new version."""

    subject = "document.created"
    producer = "dam"
    document_id: Id
    version: int = Field(ge=1)
    name: str
    row_count: int = Field(ge=0)


@register
class LabellingRequested(EventData):
    """Sent when a labelling task was created, with its items and pre-labels (an object key)."""

    subject = "labelling.requested"
    producer = "dam"
    labelling_task_id: Id
    document_id: Id
    document_version: int
    items_key: str = Field(description="Object key of the task items with their pre-labels (JSON lines)")
    label_config: str | None = None
    item_count: int | None = Field(None, ge=0)
    labels: list[str] | None = Field(None, description="The classes to choose from")


@register
class LabellingCompleted(EventData):
    """Sent when the annotations of a labelling task were ingested into a new document version."""

    subject = "labelling.completed"
    producer = "dam"
    labelling_task_id: Id
    document_id: Id
    document_version: int
    annotated_count: int = Field(ge=0)


@register
class DatasetGrouped(EventData):
    """Sent when "group items" froze a train or test dataset version."""

    subject = "dataset.grouped"
    producer = "dam"
    dataset_id: Id
    version: int = Field(ge=1)
    purpose: Literal["train", "test"]
    manifest_key: str = Field(description="Object key of the immutable manifest")
    item_count: int = Field(ge=0)
    is_badcase_test_set: bool = False
    name: str | None = Field(None, description="The dataset's name (its versions share it)")
    group_id: Id | None = Field(None, description="Shared by the train and test datasets of one grouping")
    function: str | None = Field(None, description="The function the data is for; always set on a badcase test "
                                                   "set (the function whose badcases it holds)")
    modality: Literal["file", "table", "mixed"] | None = Field(
        None, description="file: every item is a file (image, tensor, …); table: every item is a row of feature "
                          "columns; mixed: both")


# ---- MTT ---------------------------------------------------------------------------------------

@register
class TaskCreated(EventData):
    """Sent when a training or testing task was created."""

    subject = "task.created"
    producer = "mtt"
    task_id: Id
    kind: Literal["train", "test"]


@register
class TaskFinished(EventData):
    """Sent when a task's run ended successfully."""

    subject = "task.finished"
    producer = "mtt"
    task_id: Id
    kind: Literal["train", "test"]
    metrics: dict[str, float] = {}


@register
class TaskFailed(EventData):
    """Sent when a task's run failed, timed out or was cancelled."""

    subject = "task.failed"
    producer = "mtt"
    task_id: Id
    kind: Literal["train", "test"]
    reason: str


SetKind = Literal["badcase_test_set", "test_split", "other"]


class TestingOutcomeLine(_Part):
    """One line of the per-sample outcomes file of `testing.completed` (JSON lines, in the object store)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sample_id: str | None = None
    data_ref: str | None = Field(None, description="The sample's data: a DAM file MD5 or an object key")
    ground_truth: Any = None
    prediction: Any = None
    correct: bool
    badcase_id: Id | None = Field(None, description="Set when the sample came from the badcase test set")
    features: dict[str, Any] | None = Field(None, description="A tabular sample's feature columns")
    error: float | None = Field(None, description="Regression: |prediction - ground truth|")


@register
class TestingCompleted(EventData):
    """Sent when a testing task finished: metrics and the object key of the per-sample outcomes."""

    subject = "testing.completed"
    producer = "mtt"
    task_id: Id
    model_name: str
    model_version: str
    dataset_id: Id | None = None
    function: str | None = Field(None, description="ML system function the model serves (for new badcases)")
    metrics: dict[str, float] = {}
    outcomes_key: str = Field(description="Object key of per-sample outcomes: JSON lines of TestingOutcomeLine")
    model_version_id: Id | None = Field(None, description="MSM's id of the tested version, when MTT knows it")
    set_kind: SetKind = Field("other", description="Which set the result is on: the function's badcase test set, "
                                                   "the test split of the model's training data, or another")


@register
class TestingFailed(EventData):
    """Sent when a testing task of a model version could not give a result: the set is incompatible with the
    model (modality, size, input shape; found before any run) or the run failed. The gate blocks on it."""

    subject = "testing.failed"
    producer = "mtt"
    task_id: Id | None = None
    model_name: str
    model_version: str
    model_version_id: Id | None = None
    dataset_id: Id
    function: str | None = None
    set_kind: SetKind = "other"
    incompatible: bool = Field(description="True: the model cannot take the set's items (no run was made)")
    reason: str


@register
class ModelUploaded(EventData):
    """Sent when a training task uploaded a model artifact."""

    subject = "model.uploaded"
    producer = "mtt"
    task_id: Id
    model_name: str
    object_key: str
    format: str = Field(description="onnx, or another format stored and tracked but not served")
    md5: str
    size: int = Field(ge=0)
    metrics: dict[str, float] = {}
    function: str | None = Field(None, description="The function of the training task (the model declares it)")
    test_dataset_ids: list[Id] = Field([], description="The test split(s) grouped with the training data")


# ---- MSM ---------------------------------------------------------------------------------------

@register
class ModelRegistered(EventData):
    """Sent when the registry created a model version; MTT re-tests it on the badcase test set."""

    subject = "model.registered"
    producer = "msm"
    model_version_id: Id
    name: str
    version: str
    format: str
    object_key: str
    task_id: Id | None = None
    function: str | None = Field(None, description="The function the model serves, when declared")
    test_dataset_ids: list[Id] = Field([], description="The test split(s) of the data it was trained on")
    evaluate_on_dataset_id: Id | None = Field(
        None, description="Set for a derived version (e.g. compressed): MTT tests it on this dataset, so its "
                          "accuracy can be compared with the version it was derived from")


@register
class TestingRequested(EventData):
    """Sent when the gate needs evidence it lacks: a model version's result on a dataset (the function's current
    badcase test set, or the version's test split). MTT creates the testing task once per version and dataset."""

    subject = "testing.requested"
    producer = "msm"
    model_version_id: Id
    model_name: str
    model_version: str
    format: str
    object_key: str
    function: str | None = None
    dataset_id: Id
    set_kind: SetKind = "other"
    reason: str = ""


@register
class ModelPromoted(EventData):
    """Sent when a version became `production` for its model (the alias moved to it, or back on a revert); BAM
    moves its function's badcase statuses to follow production."""

    subject = "model.promoted"
    producer = "msm"
    model_version_id: Id
    model_name: str
    model_version: str
    function: str | None = None
    previous_version: str | None = None


class DeployedVersion(_Part):
    model_version_id: Id
    weight: float = Field(1.0, ge=0)
    role: Literal["primary", "shadow"] = "primary"


@register
class DeploymentRequested(EventData):
    """Sent when a deployment passed its gate (or a maintainer overrode it) and was asked for."""

    subject = "deployment.requested"
    producer = "msm"
    deployment_id: Id
    function: str | None = Field(None, description="ML system function of the deployment's models")
    versions: list[DeployedVersion]
    target: str = Field(description="The deploy target (a deploy_targets plugin: local, docker, edge or an installed one)")
    overridden: bool = False
    override_reason: str | None = None


@register
class DeploymentSucceeded(EventData):
    """Sent when a deployment is live."""

    subject = "deployment.succeeded"
    producer = "msm"
    deployment_id: Id
    function: str | None = Field(None, description="ML system function of the deployment's models")


@register
class DeploymentFailed(EventData):
    """Sent when a deployment could not be brought up."""

    subject = "deployment.failed"
    producer = "msm"
    deployment_id: Id
    function: str | None = Field(None, description="ML system function of the deployment's models")
    reason: str


@register
class DeploymentRolledBack(EventData):
    """Sent when a deployment was rolled back to the previous one."""

    subject = "deployment.rolled_back"
    producer = "msm"
    deployment_id: Id
    function: str | None = Field(None, description="ML system function of the deployment's models")
    restored_deployment_id: Id | None = None


@register
class DeploymentBlocked(EventData):
    """Sent when the gate blocked a deployment request: the reasons, and the badcases it would regress."""

    subject = "deployment.blocked"
    producer = "msm"
    deployment_id: Id
    name: str
    function: str | None = Field(None, description="ML system function of the deployment's models")
    reasons: list[str] = Field(default_factory=list)
    regressed_badcases: list[Id] = Field(default_factory=list, description="Badcases fixed in production that a "
                                         "requested version gets wrong again")


@register
class ModelAliasMoved(EventData):
    """Sent when an alias of a model (e.g. `production`) moved: from which version to which, by whom and why."""

    subject = "model.alias_moved"
    producer = "msm"
    model_name: str
    alias: str
    function: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    from_version_id: Id | None = None
    to_version_id: Id | None = None
    actor: str
    reason: str = ""


@register
class ServingFeedback(EventData):
    """Sent when a client flagged a served prediction as wrong; BAM files or merges a badcase."""

    subject = "serving.feedback"
    producer = "msm"
    deployment_id: Id
    model_name: str
    model_version: str
    function: str | None = Field(None, description="ML system function of the deployment's model")
    model_version_id: Id | None = Field(None, description="MSM's id of the version that answered")
    prediction_id: Id | None = None
    input_ref: str | None = Field(None, description="Object key or MD5 of the served input")
    prediction: Any = None
    correct_label: Any = None
    client_id: str | None = None
    device_id: str | None = None


class _Alert(EventData):
    alert_id: Id
    rule_id: Id
    rule_name: str
    kind: str = Field(description="critical_badcase, badcase_frequency, badcase_surge, regression, deployment or "
                                  "failure")
    function: str | None = None
    group_key: str = Field(description="What the alert groups by (e.g. `function=ocr,model_version=2`)")
    severity: Literal["info", "warning", "critical"] = "warning"
    summary: str
    count: int = Field(description="Events grouped into the alert so far")
    started_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)


@register
class AlertFiring(_Alert):
    """Sent when an alert starts firing, and again at most once per repeat interval while it fires (the
    gateway groups repeats: a thousand failures of one model version make one alert, not a thousand)."""

    subject = "alert.firing"
    producer = "gateway"


@register
class AlertResolved(_Alert):
    """Sent when a firing alert's condition cleared or a maintainer resolved it (once per alert)."""

    subject = "alert.resolved"
    producer = "gateway"
    resolved_at: datetime
    resolved_by: str | None = Field(None, description="The maintainer who resolved it; None: it cleared by itself")
