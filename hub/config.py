"""All settings, read once from ``HUB_*`` environment variables by ``cli.py`` and passed down."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.wire import Wire


class HubSettings(BaseSettings):
    """The hub's configuration; every field is ``HUB_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="ignore")

    nats_url: str | None = Field(
        default=None,
        description="NATS server(s) to use, comma-separated; empty starts an embedded nats-server",
    )
    data_dir: Path = Field(default=Path("var"), description="embedded NATS store and state files")
    registry: Path | None = Field(default=None, description="registry TOML; empty: shipped demo")
    ledger_url: SecretStr | None = Field(
        default=None,
        description="ledger database (sqlite:///… or postgresql://…); empty: SQLite in data_dir",
    )
    subject_root: str = Field(default="hub", pattern=r"^[a-z][a-z0-9-]{0,30}$")

    credentials_dir: Path | None = Field(
        default=None, description="the credentials authority and the hub's identities"
    )
    credentials: Path | None = Field(
        default=None, description="this process's own credentials file (an organisation's)"
    )
    tls_ca: Path | None = Field(default=None, description="CA certificate of the servers' TLS")
    tls_cert: Path | None = Field(default=None, description="the embedded server's certificate")
    tls_key: Path | None = Field(default=None, description="the embedded server's private key")
    jetstream_max_bytes: int = Field(
        default=100 * 1024**3, gt=0, description="the hub account's JetStream storage limit"
    )
    replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas of hub streams")

    max_event_bytes: int = Field(default=256 * 1024, ge=1024, le=1024 * 1024)
    max_batch_events: int = Field(
        default=500, ge=1, le=10_000, description="events one ingest request may carry"
    )
    clock_skew_s: float = Field(default=300.0, ge=0, description="how far 'time' may be ahead")
    dedup_window_s: float = Field(default=2 * 86400.0, gt=0, description="duplicate-id window")
    ack_wait_s: float = Field(default=30.0, gt=0, description="redelivery after no ack")
    fanout_gather_s: float = Field(
        default=0.0,
        ge=0,
        le=1.0,
        description=(
            "how long fan-out waits for more events after one arrives (0: not at all); larger "
            "bundles cost less CPU per delivery, each event waits up to this long"
        ),
    )
    max_deliver: int = Field(default=6, ge=2, le=100, description="attempts before dead letter")
    backoff_s: tuple[float, ...] = Field(
        default=(2.0, 10.0, 60.0, 300.0, 900.0), description="delay before attempt 2, 3, …"
    )
    max_ack_pending: int = Field(default=1000, ge=1)
    ingest_rate: float = Field(
        default=50.0, gt=0, description="events per second one organisation may send, sustained"
    )
    ingest_burst: int = Field(
        default=1000, ge=1, description="events one organisation may send at once above the rate"
    )
    quarantine_per_org: int = Field(
        default=10_000, ge=10, description="rejected messages kept per organisation (newest)"
    )
    quarantine_max_bytes: int = Field(default=1024**3, ge=1024**2)
    quarantine_max_age_s: float = Field(default=180 * 86400.0, gt=0)
    workday_overrides: Path | None = Field(
        default=None, description="working days of years chinese-calendar does not know (TOML)"
    )
    hazard_response_hours: float = Field(
        default=4.0, gt=0, description="Art. 18: hours a department has to report officers sent"
    )
    attachment_max_bytes: int = Field(
        default=1536 * 1024, ge=1024, le=1900 * 1024, description="largest case attachment"
    )
    case_watch_s: float = Field(
        default=10.0, gt=0, description="how often passed case deadlines are looked for"
    )
    audit_suite: Literal["ed25519-sha256", "sm2-sm3"] = Field(
        default="ed25519-sha256",
        description="signatures and hashes of the record (sm2-sm3: 国密 SM2 with SM3)",
    )
    checkpoint_s: float = Field(
        default=5.0, gt=0, description="how often new messages are covered by a signed checkpoint"
    )
    audit_verify_s: float = Field(
        default=300.0,
        gt=0,
        description="how often the running hub verifies the whole record (at most 10 % busy)",
    )
    deep_check_s: float = Field(
        default=3600.0,
        gt=0,
        description="how often every ledger row is recomputed from the streams",
    )
    drift_check_s: float = Field(
        default=60.0, gt=0, description="how often stream and consumer settings are re-checked"
    )
    request_timeout_s: float = Field(default=5.0, gt=0, description="deadline of NATS requests")
    publish_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="how long a publisher waits for the hub's answer before sending again (a hub "
        "process that died answers nothing; another one answers the resend)",
    )
    publish_retries: int = Field(default=5, ge=0, description="SDK resends of an unanswered event")

    embedded_host: str = "127.0.0.1"
    embedded_port: int = Field(default=0, ge=0, le=65535, description="0: a free port")
    embedded_sync_always: bool = Field(
        default=True, description="fsync every JetStream write before acknowledging it"
    )
    log_level: str = "INFO"
    project_ledger: bool = Field(
        default=True, description="the hub process keeps the ledger (off: run `hub ledger follow`)"
    )

    ledger_wait_s: float = Field(
        default=60.0, ge=0, description="how long the hub waits at start-up for the ledger database"
    )
    store_check_s: float = Field(
        default=15.0, gt=0, description="how often the events stream is checked against the ledger"
    )
    store_check_full_s: float = Field(
        default=3600.0, gt=0, description="how often every event's key is read back (full check)"
    )

    ops_password: SecretStr | None = Field(
        default=None, description="the ops login (user 'ops') of the ops page and /metrics"
    )
    web_host: str = Field(default="127.0.0.1", description="ops page, metrics and health")
    web_port: int = Field(default=8080, ge=0, le=65535, description="0: a free port")
    dashboard_port: int = Field(
        default=8081, ge=0, le=65535, description="the township dashboard of hub up / hub dashboard"
    )
    gateway_host: str = Field(
        default="127.0.0.1", description="the HTTP gateway (behind the county's HTTPS proxy)"
    )
    gateway_port: int = Field(default=8090, ge=0, le=65535, description="0: a free port")
    gateway_tls_cert: Path | None = Field(
        default=None, description="the gateway's HTTPS certificate (empty: plain HTTP)"
    )
    gateway_tls_key: Path | None = Field(default=None, description="its private key")
    gateway_client_ca: Path | None = Field(
        default=None,
        description="mutual TLS: only clients with a certificate of this CA connect, and the "
        "certificate's CN names the organisation (hub credentials client-cert)",
    )
    at_risk_after: time = Field(
        default=time(20, 0),
        description="from this time of day (Asia/Shanghai) open events formed today are at risk",
    )
    js_key_file: Path | None = Field(
        default=None,
        description="key that encrypts the embedded server's JetStream store at rest (0600 file); "
        "empty: credentials_dir/jetstream.key, made once",
    )

    @field_validator("backoff_s")
    @classmethod
    def _positive_backoff(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("needs at least one positive delay")
        return value

    @property
    def wire(self) -> Wire:
        """Subject and stream names under this hub's root."""
        return Wire(self.subject_root)

    @property
    def ledger_database(self) -> str:
        """The ledger's database URL."""
        if self.ledger_url is not None:
            return self.ledger_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'ledger.sqlite3'}"

    @property
    def credentials_store(self) -> Path:
        """Where the credentials authority and the hub's identities live."""
        return self.credentials_dir or self.data_dir / "credentials"

    @property
    def url_file(self) -> Path:
        """Where ``hub up`` writes the URL of its embedded server for other commands."""
        return self.data_dir / "nats.url"


BUNDLE_BYTES = 512 * 1024  # fits NATS's default max_payload of 1 MB with room for headers


def bundle_bytes(settings: HubSettings) -> int:
    """How large a delivery bundle grows before the next one starts (one event always fits)."""
    return max(BUNDLE_BYTES, settings.max_event_bytes + 16 * 1024)
