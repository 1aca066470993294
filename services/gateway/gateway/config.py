import ipaddress
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mlife_shared.messaging.natsauth import callout_issuer
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
    upstream_connections: int = Field(20, ge=1, description="Connections the gateway keeps open to each service; "
                                      "more concurrent requests for one service wait for one (at most the upstream "
                                      "timeout): the bound on one service's concurrent requests through this gateway. "
                                      "Idle connections cost nothing per request; raise it when many long uploads or "
                                      "downloads run at once")
    auth_cache_seconds: float = Field(2.0, ge=0, description="How long the gateway remembers an API token's or a "
                                      "session's user (role, disabled) instead of reading it from the database on "
                                      "every request. This process forgets them at once when a user, token or "
                                      "session changes through it; another gateway replica within this time. 0: "
                                      "read every time")
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
    smtp_host: str | None = Field(None, description="SMTP server alert e-mails go through; unset: alerts send no "
                                  "e-mail (their events and webhooks still go out)")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port (587 with STARTTLS, typically)")
    smtp_from: str = Field("mlife@localhost", description="The From address of alert e-mails")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS (certificate checked)")
    smtp_username: str | None = Field(None, description="SMTP login user, when the server wants one")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password")
    smtp_timeout_seconds: float = Field(10.0, gt=0, description="Bound on one SMTP conversation")
    alert_email_max_attempts: int = Field(5, ge=1, le=100, description="Attempts to send one alert e-mail (backoff "
                                          "30 s, doubling) before it is marked failed")
    alerts_interval_seconds: float = Field(5.0, gt=0, description="How often the worker fires, repeats and resolves "
                                           "alerts and sends their e-mails")
    webhook_allow_hosts: list[str] = Field([], description="Hosts or CIDRs webhooks may reach even though they are "
                                           "private or loopback (every other internal address is refused)")
    webhook_timeout_seconds: float = Field(10.0, description="Timeout of one webhook delivery attempt")
    webhook_schedule_seconds: list[float] = Field(
        [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="When each attempt of a webhook delivery is made, in seconds after the previous one (the first "
                    "after the event): its length is the number of attempts before a delivery fails")
    webhook_secret_rotation_hours: float = Field(24.0, description="How long a rotated webhook secret still signs "
                                                 "deliveries (beside the new one), so receivers can switch")
    webhook_poll_seconds: float = Field(1.0, description="How often the worker's dispatcher looks for due deliveries")
    webhook_lease_seconds: float = Field(120.0, description="How long a delivery being sent is reserved for the "
                                         "dispatcher sending it (longer than the timeout)")
    webhook_replay_max_events: int = Field(10000, description="Most events one webhook replay reads from the streams")

    auth_callout_seed: SecretStr | None = Field(None, description="The NATS auth callout issuer's account nkey seed "
                                                "(`SA…`; nats-server's `auth_callout.issuer` is its public key): the "
                                                "gateway then answers the logins of outside subscribers. `mlife up` "
                                                "makes one; `python -m mlife_shared.messaging.natsauth "
                                                "--callout-key` prints a new pair")
    subscriber_login_ttl_seconds: float = Field(3600.0, gt=0, description="How long a subscriber's NATS login "
                                                "lasts before the server disconnects it and asks again (a deleted "
                                                "or rotated login is refused for new connections at once)")

    @field_validator("auth_callout_seed")
    @classmethod
    def _account_seed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            seed = value.get_secret_value().strip()
            try:
                ok = seed.startswith("SA") and callout_issuer(seed).startswith("A")
            except Exception:  # noqa: BLE001 - nkeys raises several kinds for a malformed seed
                ok = False
            if not ok:
                raise ValueError("MLIFE_GATEWAY_AUTH_CALLOUT_SEED is not an account nkey seed (SA…): print one with "
                                 "python -m mlife_shared.messaging.natsauth --callout-key")
            return SecretStr(seed)
        return value

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
