from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """MSM settings: `MLIFE_MSM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "msm"
    model_config = SettingsConfigDict(env_prefix="MLIFE_MSM_", extra="ignore")
