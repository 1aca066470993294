from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """MTT settings: `MLIFE_MTT_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "mtt"
    model_config = SettingsConfigDict(env_prefix="MLIFE_MTT_", extra="ignore")

    # MLflow (REST only; the server runs from its own venv, see README)
    mlflow_tracking_uri: str = Field("", description="MLflow server, e.g. http://127.0.0.1:5000; empty: no MLflow")
    mlflow_ui_url: str = Field("", description="Base URL of the MLflow UI for links; default: the tracking URI")
    mlflow_experiment: str = "mlife"

    # Automatic tasks
    default_train_code: str = Field("", description="Code location used for train tasks made from dataset.grouped")
    default_train_command: str = ""
    default_train_params: dict = {}
    default_test_model: str = Field("", description="Model name tested on new test datasets (latest registered)")
    default_test_params: dict = {}
    auto_run: bool = True

    # Runners
    embedded_runners: int = Field(0, ge=0, le=64, description="runner slots inside the API process (embedded mode)")
    runs_stream: str = "MLIFE_MTT_RUNS"
    runs_subject_prefix: str = "mtt.run"
    default_queue: str = "default"
    runner_backend: Literal["subprocess", "docker"] = "subprocess"
    docker_image: str = "python:3.11-slim"
    work_root: Path | None = None
    keep_work_dirs: bool = False
    task_timeout_seconds: float = 3600.0
    ack_wait_seconds: float = 60.0
    poll_seconds: float = 0.5
    log_flush_seconds: float = 1.0
    kill_grace_seconds: float = 5.0
    stale_after_seconds: float = 120.0
    max_model_bytes: int = 2 * 1024 * 1024 * 1024
    max_upload_bytes: int = 512 * 1024 * 1024
    eval_batch_size: int = 1024

    def work_dir(self) -> Path:
        return self.work_root or (self.home / "mtt-work")
