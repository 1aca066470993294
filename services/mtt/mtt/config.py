from pathlib import Path
from typing import Any, ClassVar, Literal

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
    mlflow_experiment: str = Field("mlife", description="MLflow experiment every task's run goes into")

    # Automatic tasks
    default_train_code: str = Field("", description="Code location used for train tasks made from dataset.grouped")
    default_train_command: str = Field("", description='Command for train tasks made from dataset.grouped')
    default_train_params: dict[str, Any] = Field({}, description='Params for those train tasks (JSON object)')
    default_test_model: str = Field("", description="Model name tested on new test datasets (latest registered)")
    default_test_params: dict[str, Any] = Field({}, description='Params for automatic testing tasks (JSON object)')
    auto_run: bool = Field(True, description='Queue automatic tasks at once when they are complete')

    # Runners
    embedded_runners: int = Field(0, ge=0, le=64, description="runner slots inside the API process (embedded mode)")
    runs_stream: str = Field("MLIFE_MTT_RUNS", description='JetStream work-queue stream of runs (internal to MTT)')
    runs_subject_prefix: str = Field("mtt.run", description='Subject prefix of the run queue (`<prefix>.<queue>`)')
    default_queue: str = Field("default", description='Queue of a task that names none')
    runner_backend: str = Field("bwrap", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
                                description='The runners plugin task commands run in: `bwrap` (bubblewrap sandbox), '
                                '`docker` (docker SDK), `unsandboxed` (needs ALLOW_UNSANDBOXED) or an installed '
                                'plugin (GET /api/mtt/plugins); a task\'s params.runner picks another. `subprocess` '
                                '(the old name) means `bwrap`')
    docker_image: str = Field("python:3.11-slim", description='Image for the docker backend')
    docker_cpus: float = Field(2.0, gt=0, description='CPUs a task container may use (docker backend)')
    work_root: Path | None = Field(None, description="Runners' work folders; default: home/mtt-work")
    keep_work_dirs: bool = Field(False, description="Keep a run's work folder after it ends")
    task_timeout_seconds: float = Field(3600.0, description='Default timeout of a run')
    ack_wait_seconds: float = Field(60.0, description='Run-queue ack wait (runners heartbeat within it)')
    poll_seconds: float = Field(0.5, description='Runner poll interval')
    log_flush_seconds: float = Field(1.0, description="How often a run's log is flushed to the store")
    kill_grace_seconds: float = Field(5.0, description='SIGTERM to SIGKILL grace on cancel/timeout')
    stale_after_seconds: float = Field(120.0, description='A run whose runner is silent this long gets a new attempt')
    max_model_bytes: int = Field(2 * 1024 * 1024 * 1024, description='Largest model a task may upload')
    max_upload_bytes: int = Field(512 * 1024 * 1024, description='Largest code archive or result upload')
    eval_batch_size: int = Field(1024, description='Rows per onnxruntime call in the built-in evaluator')

    # Sandbox of user code (see README "Sandbox"); the built-in evaluator is platform code and runs in the runner
    code_roots: list[Path] = Field([], description='Folders a task\'s code_location may name (JSON list of absolute '
                                   'paths); empty: only uploaded code archives (store:<key>)')
    sandbox: Literal["bwrap", "none"] = Field("bwrap", description='`none` turns the `bwrap` runner backend into '
                                              '`unsandboxed` (which needs ALLOW_UNSANDBOXED)')
    allow_unsandboxed: bool = Field(False, description='Operator opt-out: run task commands without a sandbox, as '
                                    'the runner\'s user (the `unsandboxed` backend, or sandbox=none); never on a shared '
                                    'machine')
    bwrap_path: str = Field("bwrap", description='The bubblewrap binary (a name looked up in PATH, or a path)')
    sandbox_network: Literal["none", "host"] = Field("none", description='`none`: no network inside the sandbox; '
                                                     '`host`: the code reaches whatever the runner host reaches')
    sandbox_uid: int = Field(65534, ge=1, description='uid/gid of task code in runner slot 0 (never 0)')
    sandbox_slot_uid_base: int = Field(100000, ge=1, description='Runner slot k > 0 runs task code as this + k')
    sandbox_memory_mb: int = Field(8192, ge=64, description='Address-space limit of each task process (MiB)')
    sandbox_cpu_seconds: int = Field(6 * 3600, ge=1, description='CPU-time limit of each task process (seconds)')
    sandbox_max_processes: int = Field(512, ge=8, description='Processes + threads of the task user (RLIMIT_NPROC)')
    sandbox_max_file_mb: int = Field(8192, ge=1, description='Largest file task code may write (MiB)')
    sandbox_ro_paths: list[Path] = Field([], description='Extra host folders the sandbox mounts read-only '
                                         '(e.g. a conda env); the runner\'s Python prefixes are mounted anyway')

    def work_dir(self) -> Path:
        return self.work_root or (self.home / "mtt-work")
