from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings

SERVICES = ("bam", "dam", "mtt", "msm")


class Settings(ServiceSettings):
    """Gateway settings: `MLIFE_GATEWAY_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "gateway"
    model_config = SettingsConfigDict(env_prefix="MLIFE_GATEWAY_", extra="ignore")

    bam_url: str = "http://127.0.0.1:8001"
    dam_url: str = "http://127.0.0.1:8002"
    mtt_url: str = "http://127.0.0.1:8003"
    msm_url: str = "http://127.0.0.1:8004"
    upstream_timeout_seconds: float = 60.0
    admin_token: SecretStr | None = None
    admin_password: SecretStr | None = None

    def upstream(self, service: str) -> str:
        return str(getattr(self, f"{service}_url")).rstrip("/")
