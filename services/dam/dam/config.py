from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """DAM settings: `MLIFE_DAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "dam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_DAM_", extra="ignore")
