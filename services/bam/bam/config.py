from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """BAM settings: `MLIFE_BAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "bam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_BAM_", extra="ignore")

    function_weights: dict[str, float] = {}
    priority_half_life_days: float = 14.0
    rescore_interval_seconds: float = 3600.0
    max_data_bytes: int = 50 * 1024 * 1024
    max_import_bytes: int = 512 * 1024 * 1024
