from typing import Annotated, ClassVar

from fastapi import Depends, Request
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """DAM settings: `MLIFE_DAM_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "dam"
    model_config = SettingsConfigDict(env_prefix="MLIFE_DAM_", extra="ignore")

    max_upload_bytes: int = Field(2 * 1024 * 1024 * 1024, description="Largest uploaded file (413 beyond)")
    io_threads: int = Field(32, description="Threads for blocking object-store and archive I/O")
    small_upload_bytes: int = Field(8 * 1024 * 1024, description="Bodies up to this size are hashed in memory before "
                                                                 "one write; larger ones stream through a temporary "
                                                                 "object")
    media_max_bytes: int = Field(512 * 1024 * 1024, description="Largest audio, video or tensor file DAM decodes: "
                                                                "probed at upload, previewed and converted to "
                                                                "test data (larger ones: no media facts, 422 on "
                                                                "preview)")
    max_document_bytes: int = Field(64 * 1024 * 1024, description="Largest document body (CSV, JSON, XML)")
    max_document_rows: int = Field(500_000, description="Most rows in one document version")
    archive_max_entries: int = Field(10_000, description="Most entries in an uploaded archive")
    archive_max_expanded_bytes: int = Field(4 * 1024 * 1024 * 1024, description="Largest total expanded size of an archive")
    archive_max_ratio: float = Field(200.0, description="Largest compression ratio of a zip entry (zip bombs)")
    labelstudio_url: str = Field("", description="Label Studio base URL; empty: no connector")
    labelstudio_token: SecretStr = Field(SecretStr(""), description="Label Studio API token")
    labelstudio_webhook_url: str = Field("", description="URL Label Studio calls for its webhooks (DAM's "
                                                         "/webhooks/labelstudio as Label Studio reaches it)")
    labelstudio_webhook_secret: SecretStr = Field(SecretStr(""), description="Shared secret Label Studio sends in "
                                                                             "its webhook header")
    labelstudio_reconcile_seconds: float = Field(60.0, description="How often annotations are pulled from Label "
                                                                   "Studio (it never retries a webhook)")
    outbound_allow_hosts: list[str] = Field([], description="Hosts, IPs or CIDRs (optionally :port) that "
                                                            "user-supplied URLs (pre-label endpoints) may reach "
                                                            "although internal; everything else internal is refused")
    msm_url: str = Field("http://127.0.0.1:8004", description="MSM's API as DAM reaches it, for pre-labels from an "
                                                              "MSM deployment (operator-set, inside the platform)")
    prelabel_timeout_seconds: float = Field(60.0, description="Timeout of one pre-label request")
    prelabel_max_response_bytes: int = Field(16 * 1024 * 1024, description="Largest answer read from a pre-label endpoint")
    public_url: str = Field("http://127.0.0.1:8000", description="The gateway's URL, for links in labelling tasks")


async def get_settings(request: Request) -> Settings:
    """DAM's settings in a route (the app holds the ones it was created with)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
