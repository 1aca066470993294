from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """BAM settings: `MLIFE_BAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "bam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_BAM_", extra="ignore")
