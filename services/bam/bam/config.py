from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """BAM settings: `MLIFE_BAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "bam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_BAM_", extra="ignore")

    function_weights: dict[str, float] = Field({}, description="Priority weight per ML function (JSON object); 1 otherwise")
    priority_half_life_days: float = Field(14.0, description="Days after which an unseen badcase's priority halves")
    rescore_interval_seconds: float = Field(3600.0, description="How often the worker re-scores every badcase")
    max_data_bytes: int = Field(50 * 1024 * 1024, description="Largest data file attached to a report")
    max_import_bytes: int = Field(512 * 1024 * 1024, description="Largest bulk import body")
