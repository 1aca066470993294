import ipaddress
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mlife_shared.settings import ServiceSettings

SERVICES = ("bam", "dam", "mtt", "msm")

# Routes whose bodies may be large (files, bulk imports, model artifacts): streamed, never buffered,
# limited by `max_upload_bytes`; every other body is limited by `max_body_bytes`.
UPLOAD_ROUTES = (
    r"^/api/dam/files(/archive)?$",
    r"^/api/dam/documents(/[^/]+/versions)?$",
    r"^/api/bam/badcases/with-data$",
    r"^/api/bam/badcases/import$",
    r"^/api/mtt/tasks$",  # a one-call create carries the task's code archive
    r"^/api/mtt/tasks/[^/]+/(model|logs|results|code)$",
    r"^/api/msm/models/[^/]+/versions$",
)


class Settings(ServiceSettings):
    """Gateway settings: `MLIFE_GATEWAY_*`, falling back to the common `MLIFE_*`."""

    service_name: ClassVar[str] = "gateway"
    model_config = SettingsConfigDict(env_prefix="MLIFE_GATEWAY_", extra="ignore")

    bam_url: str = "http://127.0.0.1:8001"
    dam_url: str = "http://127.0.0.1:8002"
    mtt_url: str = "http://127.0.0.1:8003"
    msm_url: str = "http://127.0.0.1:8004"
    upstream_timeout_seconds: float = 60.0
    upstream_connect_timeout_seconds: float = 3.0
    admin_token: SecretStr | None = None
    admin_password: SecretStr | None = None
    # Host-header allow-list: exact names, `*.example.org` for subdomains, or `*` for any.
    allowed_hosts: list[str] = ["localhost", "127.0.0.1", "::1"]
    max_body_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024 * 1024
    upload_routes: list[str] = list(UPLOAD_ROUTES)
    session_cookie_name: str = "mlife_session"
    session_ttl_hours: float = 12.0
    # None: Secure cookies outside development (browsers accept them on http://localhost too).
    session_cookie_secure: bool | None = None
    session_cookie_samesite: Literal["lax", "strict"] = "strict"
    login_window_minutes: float = 15.0
    login_max_failures_per_account: int = Field(5, description="Failed logins for one account from one source "
                                                "(address; an IPv6 /64) before that source is refused for the window; "
                                                "other sources still log in (a maintainer can unlock)")
    login_max_failures_per_ip: int = Field(30, description="Failed logins from one source, any account, in the window")
    events_nats_url: str | None = Field(None, description="The NATS address the event API's AsyncAPI document gives "
                                        "subscribers (default: the gateway's own nats_url, credentials removed)")
    trusted_proxies: list[str] = Field([], description="Addresses or CIDRs of reverse proxies in front of the "
                                       "gateway: only from these is X-Forwarded-For believed (e.g. [\"10.0.0.0/8\"])")

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"MLIFE_GATEWAY_TRUSTED_PROXIES: {entry!r} is not an address or CIDR") from None
        return value

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(e.strip(), strict=False) for e in self.trusted_proxies]

    def upstream(self, service: str) -> str:
        return str(getattr(self, f"{service}_url")).rstrip("/")

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is not None:
            return self.session_cookie_secure
        return self.environment != "development"
