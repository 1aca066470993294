from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """DAM settings: `MLIFE_DAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "dam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_DAM_", extra="ignore")

    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    io_threads: int = 32
    small_upload_bytes: int = 8 * 1024 * 1024
    max_document_bytes: int = 64 * 1024 * 1024
    max_document_rows: int = 500_000
    archive_max_entries: int = 10_000
    archive_max_expanded_bytes: int = 4 * 1024 * 1024 * 1024
    archive_max_ratio: float = 200.0
    labelstudio_url: str = ""
    labelstudio_token: SecretStr = SecretStr("")
    labelstudio_webhook_url: str = ""
    labelstudio_webhook_secret: SecretStr = SecretStr("")
    labelstudio_reconcile_seconds: float = 60.0
    public_url: str = "http://127.0.0.1:8000"
