"""Settings base: one env prefix per service, common `MLIFE_*` values as the fallback.

`MLIFE_BAM_DATABASE_URL` beats `MLIFE_DATABASE_URL`; a `{service}` placeholder in a URL or a path
is replaced by the service name, so one template serves every service
(`postgresql+asyncpg://mlife@db/mlife_{service}`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

Environment = Literal["development", "test", "production"]


def mlife_home() -> Path:
    return Path(os.environ.get("MLIFE_HOME", ".mlife")).resolve()


def development_secret(home: Path, name: str) -> str:
    """A random secret kept in the home folder: development never runs on a well-known key."""
    path = home / name
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


class ServiceSettings(BaseSettings):
    """What every service reads; a service subclasses it and sets `service_name` and its prefix."""

    service_name: ClassVar[str] = "service"
    model_config = SettingsConfigDict(extra="ignore", env_prefix="MLIFE_SERVICE_")

    environment: Environment = Field("development", description="`development`, `test` or `production` (production "
                                                                "refuses to start without its secrets)")
    home: Path = Field(default_factory=mlife_home, description="Folder for embedded data (SQLite, objects, NATS)")
    database_url: str = Field("", description="SQLAlchemy async URL; default: a SQLite file in home")
    database_pool_size: int = Field(10, ge=1, description="Connections each database engine of a process keeps "
                                                          "open (the API, the worker and each runner have one); as "
                                                          "many more, at least 10, open under load and close when "
                                                          "returned")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS with JetStream (`mlife up`: its own server); a "
                                                              "cluster: its nodes' URLs, comma-separated")
    nats_replicas: int = Field(1, ge=1, le=5, description="Nodes of the JetStream cluster that hold each stream (and "
                                                          "its consumers): 1 on one server, 3 in a three-node cluster; "
                                                          "an existing stream is scaled to it when its worker starts")
    nats_user: str = Field("", description="This service's NATS user (permissions: mlife_shared.messaging.natsauth); "
                                           "default: the service name")
    nats_password: SecretStr = Field(SecretStr(""), description="That user's NATS password; development: read from "
                                                                "home/nats/<user>.password when present; required in "
                                                                "production")
    stream_max_age_days: float = Field(30.0, description="JetStream retention: how far back a consumer can be rebuilt")
    object_store: Literal["local", "s3"] = Field("local", description="`local` (a folder) or `s3` (MinIO or any S3 server)")
    object_store_path: Path | None = Field(None, description="The local backend's folder; default: `objects` in home")
    s3_endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3 server")
    s3_access_key: SecretStr = Field(SecretStr(""), description="S3 access key")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key")
    s3_bucket: str = Field("mlife", description="The bucket every service writes under its own prefix")
    s3_secure: bool = Field(False, description="HTTPS to the S3 server")
    identity_secret: SecretStr = Field(SecretStr(""), description="Signs the identity the gateway forwards; "
                                                                  "development: generated into home/identity.key")
    identity_ttl_seconds: int = Field(60, description="Lifetime of a forwarded identity")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(True, description="JSON log lines (with request, correlation and event ids); false: console")
    consumer_max_deliver: int = Field(5, description="Deliveries of a failing event before it is dead-lettered")
    consumer_backoff_seconds: list[float] = Field([0.5, 2.0, 10.0, 30.0], description="Waits between redeliveries")
    relay_batch_size: int = Field(256, description="Outbox rows the relay publishes per round")
    relay_poll_seconds: float = Field(0.5, description="How often the relay looks for rows when not woken (SQLite; "
                                                       "PostgreSQL uses NOTIFY)")
    metrics_token: SecretStr = Field(SecretStr(""), description="Bearer token Prometheus sends to `/metrics` "
                                                                "(`authorization: credentials`); without it "
                                                                "`/metrics` needs an engineer's identity")
    max_json_depth: int = Field(64, ge=2, le=512, description="Deepest nesting of `[`/`{` a JSON body may have "
                                                              "(deeper: 422 before parsing)")
    http_header_timeout_seconds: float = Field(10.0, gt=0, description="A connection whose request head is not "
                                                                       "complete this long after it opened (or after "
                                                                       "its last response) is closed")
    http_body_timeout_seconds: float = Field(60.0, gt=0, description="A request whose body sends nothing for this "
                                                                     "long gets 408 and is closed")
    http_max_connections: int = Field(1000, ge=0, description="Concurrent connections or requests before new "
                                                              "requests get 503 (0: no bound)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        common = EnvSettingsSource(settings_cls, env_prefix="MLIFE_")
        return (init_settings, env_settings, common, dotenv_settings, file_secret_settings)

    @model_validator(mode="after")
    def _resolve(self) -> ServiceSettings:
        name = self.service_name
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.home / (name + '.db')}"
        self.database_url = self.database_url.replace("{service}", name)
        if self.object_store_path is None:
            self.object_store_path = self.home / "objects"
        if not self.identity_secret.get_secret_value():
            if self.environment != "development":
                raise ValueError(
                    "MLIFE_IDENTITY_SECRET is required outside development: set it to a long random value "
                    "shared by the gateway and the services"
                )
            self.identity_secret = SecretStr(development_secret(self.home, "identity.key"))
        if self.object_store == "s3" and self.environment != "development":
            if not self.s3_access_key.get_secret_value() or not self.s3_secret_key.get_secret_value():
                raise ValueError("MLIFE_S3_ACCESS_KEY and MLIFE_S3_SECRET_KEY are required for the S3 store")
        self._resolve_nats_credentials()
        return self

    def _resolve_nats_credentials(self) -> None:
        """The bus is authenticated: each service has its own NATS user (natsauth); `mlife up` writes the
        passwords into home/nats, compose passes each container its own."""
        if not self.nats_user:
            self.nats_user = self.service_name
        if self.nats_password.get_secret_value():
            return
        if self.environment == "production":
            prefix = self.model_config.get("env_prefix") or "MLIFE_"
            raise ValueError(
                f"{prefix}NATS_PASSWORD (or MLIFE_NATS_PASSWORD) is required in production: the password of NATS "
                f"user {self.nats_user!r} (deploy/nats/nats.conf)")
        if self.environment == "development":
            path = self.home / "nats" / f"{self.nats_user}.password"
            if path.is_file():
                self.nats_password = SecretStr(path.read_text().strip())

    def nats_credentials(self) -> dict[str, str]:
        """`user`/`password` for bus.connect, or nothing (an open server, as tests run)."""
        password = self.nats_password.get_secret_value()
        return {"user": self.nats_user, "password": password} if password else {}

    def public_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
