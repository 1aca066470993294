from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """MSM settings: `MLIFE_MSM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "msm"
    model_config = SettingsConfigDict(env_prefix="MLIFE_MSM_", extra="ignore")

    model_max_bytes: int = Field(2 << 30, description="Largest model accepted (upload or import)")
    model_source_prefixes: list[str] = Field(["mtt/", "msm/"],
                                             description="Object-key prefixes a model may be imported from")
    # Serving
    intra_op_threads: int = Field(0, description="onnxruntime intra-op threads; 0 = the machine's cores")
    ort_allow_spinning: bool = Field(False, description="Let idle onnxruntime threads spin (faster runs, busy cores)")
    max_batch_size: int = Field(64, description="Most rows one micro-batch hands to session.run")
    batch_wait_ms: float = Field(0.0, description="Extra wait for more requests before running a micro-batch")
    max_request_bytes: int = Field(8 << 20, description="Largest predict/feedback body")
    max_input_elements: int = Field(1_000_000, description="Most tensor elements in one predict request")
    inline_run_us: float = Field(300.0, description="Models whose one-row run takes less are run on the event loop")
    prediction_log_rate: float = Field(0.1, ge=0, le=1, description="Share of predictions written to the log")
    serving_unload_idle_seconds: float = Field(300.0, description="Unload a version no live deployment uses after this")
    serving_refresh_seconds: float = Field(1.0, description="How long a predict trusts its cached deployment state")
    # Docker
    docker_host: str = Field("", description="Docker engine URL (unix:///var/run/docker.sock); empty = no builds")
