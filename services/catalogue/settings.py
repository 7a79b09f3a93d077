"""Runtime settings, read from the environment (prefix ``DRB_``)."""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the broker; built once per process by its entry point, never at import."""

    model_config = SettingsConfigDict(env_prefix="DRB_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="State: SQLite file, store, outbox.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite under the data dir."
    )
    redis_url: str | None = Field(
        default=None, description="Redis for the queue; unset means an in-process worker."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    admin_token: SecretStr | None = Field(
        default=None, description="A steward token accepted from start-up (bootstrap)."
    )
    token_ttl_days: int = Field(
        default=90, ge=1, le=366, description="How long a new token lives unless its issuer says."
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated IPs or CIDRs of the TLS proxies whose X-Forwarded-Proto and"
            " X-Forwarded-For are believed; empty trusts none; '*' trusts anyone (dangerous)."
        ),
    )
    hsts_max_age: int = Field(
        default=31536000, ge=0, description="Strict-Transport-Security max-age over https; 0: off."
    )
    demo: bool = Field(default=True, description="Seed the demo data on `drb seed-demo`.")
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_json_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest body other than an upload (JSON, the web pages' forms); 413 past it.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests a token (or an address without one) may make a minute; 0: no limit.",
    )
    upload_rate_limit_per_minute: int = Field(
        default=60, ge=0, description="Uploads (POST /v1/submissions) a token may make a minute."
    )
    worker_threads: int = Field(default=2, ge=1, le=64)
    sweep_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often lost, unsent and abandoned jobs are looked for."
    )
    job_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "A job sent to the queue that no worker has claimed by then is sent again (a message"
            " lost without the queue restarting); a running job with no heartbeat as well."
        ),
    )
    job_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a worker renews the leases of its running jobs."
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A running job whose worker's heartbeat is older than this is taken over.",
    )
    maintenance_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often due extracts and MESH deliveries are checked."
    )
    reminders: bool = Field(
        default=True,
        description=(
            "Send the daily reminders from the worker (and the embedded worker of `drb serve`);"
            " false: only `drb remind` sends them."
        ),
    )
    reminder_days: int = Field(
        default=5,
        ge=0,
        le=60,
        description=(
            "Trusts are reminded of returns due within this many days, and of overdue ones, once"
            " a day; each oversight body gets a daily summary of who has not returned."
        ),
    )
    reminder_hour: int = Field(
        default=7,
        ge=0,
        le=23,
        description=(
            "The daily reminders go from this hour (the server's local time) on; `drb remind`"
            " sends them whenever it is run."
        ),
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for the e-mail channel; unset: no e-mail."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(
        default="data-request-broker@localhost", description="The From address of e-mails."
    )
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection with STARTTLS before sending."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    hourly_rate_gbp: float = Field(
        default=25.72,
        gt=0,
        description=(
            "Cost of an hour of trust staff time: NHS Agenda for Change 2025/26 Band 6 entry"
            " point (38,682 GBP a year, 37.5 hours a week) plus 30% employer on-costs."
        ),
    )
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the HMAC-SHA256 signature of the audit chain's head (GET"
            " /v1/audit-events/head, `drb audit-head`); keep it off the database host. Unset:"
            " heads are not signed."
        ),
    )
    delivery_file_roots: str = Field(
        default="",
        description=(
            "Comma-separated absolute folders under which a `files` delivery setting may name a"
            " file:// folder; empty: only the broker's own outbox (DRB_DATA_DIR/outbox)."
        ),
    )
    delivery_s3_endpoints: str = Field(
        default="",
        description=(
            "Comma-separated S3 endpoints a delivery setting's s3:// URI may name in"
            " `endpoint_override` (`host:port` over https, `http://host:port` over http);"
            " empty: none, only the object store's own endpoints."
        ),
    )
    mesh_url: str | None = None
    mesh_mailbox: str | None = None
    mesh_password: SecretStr | None = None
    mesh_shared_key: SecretStr | None = None
    mesh_client_cert: Path | None = Field(
        default=None,
        description=(
            "PEM file of the broker's MESH client certificate, for MESH's mutual TLS (live and"
            " path-to-live MESH require one; with DRB_MESH_CLIENT_KEY)."
        ),
    )
    mesh_client_key: Path | None = Field(
        default=None, description="PEM file of the private key of DRB_MESH_CLIENT_CERT."
    )
    mesh_ca_bundle: Path | None = Field(
        default=None,
        description=(
            "PEM file of the certificate authorities that sign the MESH server's certificate"
            " (NHS England's for live and path-to-live); unset: the system's."
        ),
    )

    @field_validator(
        "database_url",
        "redis_url",
        "mesh_url",
        "mesh_client_cert",
        "mesh_client_key",
        "mesh_ca_bundle",
        "smtp_host",
        "smtp_username",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"DRB_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR"
                ) from None
        return ",".join(entries)

    @field_validator("delivery_file_roots", "delivery_s3_endpoints")
    @classmethod
    def _delivery_allow_lists(cls, value: str, info: ValidationInfo) -> str:
        """Folders must be absolute; endpoints host:port, with http:// or https:// before."""
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if info.field_name == "delivery_file_roots":
                allowed, what = Path(entry).is_absolute(), "an absolute folder"
            else:
                scheme, _, host = entry.rpartition("://")
                allowed = (
                    scheme in ("", "http", "https") and bool(host) and not set("/@") & set(host)
                )
                what = "host:port or http(s)://host:port"
            if not allowed:
                raise ValueError(f"DRB_{str(info.field_name).upper()}: {entry!r} is not {what}")
        return ",".join(entries)

    @model_validator(mode="after")
    def _client_certificate_has_its_key(self) -> Settings:
        if (self.mesh_client_cert is None) != (self.mesh_client_key is None):
            raise ValueError(
                "DRB_MESH_CLIENT_CERT and DRB_MESH_CLIENT_KEY go together: set both or neither"
            )
        return self

    @model_validator(mode="after")
    def _a_lease_outlives_its_heartbeats(self) -> Settings:
        # A lease shorter than two heartbeats would be taken from live workers between renewals.
        if self.job_lease_seconds < 2 * self.job_heartbeat_seconds:
            raise ValueError(
                f"DRB_JOB_LEASE_SECONDS ({self.job_lease_seconds:g}) must be at least twice"
                f" DRB_JOB_HEARTBEAT_SECONDS ({self.job_heartbeat_seconds:g}), or live workers"
                " lose their jobs between heartbeats"
            )
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL in force: the setting, or SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    @property
    def store_dir(self) -> Path:
        """Where accepted data and uploads live (Parquet, partitioned by dataset and period)."""
        return self.data_dir / "store"

    @property
    def outbox_dir(self) -> Path:
        """Where the file delivery channel writes each body's extracts."""
        return self.data_dir / "outbox"

    @property
    def delivery_roots(self) -> list[Path]:
        """The folders (resolved) under which a file:// delivery setting may write."""
        entries = [Path(entry) for entry in self.delivery_file_roots.split(",") if entry]
        return [Path(os.path.realpath(root)) for root in entries or [self.outbox_dir]]

    @property
    def delivery_endpoints(self) -> frozenset[tuple[str, str]]:
        """(scheme, host:port) of each S3 endpoint a delivery setting may name."""
        found: set[tuple[str, str]] = set()
        for entry in filter(None, self.delivery_s3_endpoints.split(",")):
            scheme, _, host = entry.rpartition("://")
            found.add((scheme.lower() or "https", host.lower()))
        return frozenset(found)
