from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """MTT settings: `MLIFE_MTT_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "mtt"
    model_config = SettingsConfigDict(env_prefix="MLIFE_MTT_", extra="ignore")
