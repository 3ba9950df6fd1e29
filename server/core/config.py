"""All registry settings in one place (environment variables with the prefix FPVERIFY_).

Example: FPVERIFY_DATABASE_URL=postgresql+psycopg://registry@db/fpverify fpverify server run
Nested groups use a double underscore: FPVERIFY_DASHBOARD__TIMEZONE=Asia/Urumqi.
"""

from __future__ import annotations

from datetime import time, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-not-secret-change-me"


class ConfigError(RuntimeError):
    """A setting the registry refuses to run with; the message names the setting to give."""


class DashboardSettings(BaseModel):
    """The insurance office's pages. The registry stores UTC; the office thinks in local days and a
    17:00 report deadline, so days, the report period and every time shown use `timezone`."""

    timezone: str = "Asia/Shanghai"
    report_cutoff: time = time(17, 0)  # the daily report covers the 24 h ending at this local time
    trend_days: int = Field(default=14, ge=2, le=92)
    # Suspicion points (疑点)
    travel_minutes: float = Field(default=60.0, gt=0)  # the same card at two sites closer than this
    repeat_no_match: int = Field(default=2, ge=2)  # no_match outcomes on one card within `lookback_days`
    poor_quality_min: int = Field(default=3, ge=1)  # poor presses at one device within 24 h ...
    poor_quality_rate: float = Field(default=0.2, gt=0, le=1)  # ... and at least this share of its checks
    poor_window: int = Field(default=50, ge=1, le=10000)  # ... of its most recent checks (24 h) ...
    poor_min_checks: int = Field(default=10, ge=1)  # ... when there are at least this many (else no share)
    lookback_days: int = Field(default=7, ge=1, le=92)
    page_size: int = Field(default=100, ge=10, le=1000)
    refresh_s: int = Field(default=5, ge=0)  # live tables re-fetch this often (0: never)

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _window_holds_the_minimum(self) -> DashboardSettings:
        if self.poor_min_checks > self.poor_window:
            raise ValueError(f"poor_min_checks ({self.poor_min_checks}) cannot exceed poor_window "
                             f"({self.poor_window}): no desk could be judged")
        return self


# PIPL (docs: ../shared/domain.md, "Personal data"): records of processing are kept at least 3 years,
# and personal data no longer than necessary. A verification record is such a record: kept 36 months.
RESULTS_MONTHS_MINIMUM = 36


class RetentionSettings(BaseModel):
    """How long verification records are kept (server/ops/retention.py; `fpverify server retention`)."""

    # Whole UTC months kept before the current one; older records are deleted (at least 36: see above).
    results_months: int = Field(default=RESULTS_MONTHS_MINIMUM, le=1200)
    months_ahead: int = Field(default=3, ge=1, le=24)  # monthly partitions made ahead (PostgreSQL)

    @field_validator("results_months")
    @classmethod
    def _at_least_the_regulatory_minimum(cls, months: int) -> int:
        if months < RESULTS_MONTHS_MINIMUM:
            raise ValueError(f"{months} months is below the regulatory minimum of {RESULTS_MONTHS_MINIMUM} "
                             "(PIPL: records of processing are kept at least 3 years)")
        return months


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FPVERIFY_", env_file=None, extra="ignore",
                                      env_nested_delimiter="__")

    # How strict the registry is. "production" refuses unsigned results and development secrets;
    # "demo" and "development" relax that and every dashboard page says so.
    mode: Literal["production", "demo", "development"] = "production"

    # Database: SQLite file for the demo, PostgreSQL (psycopg 3) in production.
    database_url: str = "sqlite:///./fpverify-registry.db"
    database_echo: bool = False

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_prefix: str = "/api/v1"

    # Keys. national_id_key keys the HMAC of national ids (never stored in clear).
    national_id_key: SecretStr = SecretStr(DEV_SECRET)
    backup_key_file: Path | None = None

    # Authentication (server/core/auth.py). Failed logins slow down per (client, user name): the
    # first `login_free_failures` cost nothing, then each one doubles the wait from `login_delay_s`
    # up to `login_delay_max_s`. Another client (the real user's desk) is never slowed by them.
    # Each client may try `login_client_per_minute` logins a minute, whatever the user names.
    token_ttl_minutes: int = 8 * 60
    login_free_failures: int = Field(default=3, ge=1)
    login_delay_s: float = Field(default=2.0, gt=0)
    login_delay_max_s: float = Field(default=15 * 60.0, gt=0)
    login_client_per_minute: int = Field(default=30, ge=1)
    # Argon2id cost of new password hashes (argon2-cffi defaults). Tests lower it; never in production.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=64 * 1024, ge=64)

    # MQTT
    mqtt_enabled: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_version: Literal["5", "3.1.1"] = "5"
    mqtt_client_id: str = "fpverify-registry"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls_ca: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    mqtt_keepalive_s: int = 30
    # $share subscription for several registry processes (MQTT 5). Off by default: Mosquitto 2.0.11
    # does not restore shared subscriptions after a restart, which loses results (see server/ingest.py).
    mqtt_shared_subscription: bool = False
    # Ingestion batching: commit when this many messages are waiting or after this delay.
    ingest_batch_size: int = 500
    ingest_batch_wait_ms: int = 50
    # Messages the broker may send before we acknowledge (MQTT 5 Receive Maximum; AMQP prefetch).
    ingest_receive_maximum: int = 2000
    # Where the ingest reads results (server/ingest/consumer.py). "mosquitto": an MQTT subscription,
    # one worker (the single-machine default). "rabbitmq": stations publish MQTT 3.1.1 to RabbitMQ's
    # MQTT plugin, results land in the quorum queue `ingest_queue`, and any number of workers consume
    # it over AMQP (ingest_amqp_url), acknowledging after commit; it survives a broker restart.
    # The MQTT settings still serve the template notifications (mqtt_version "3.1.1" with RabbitMQ).
    ingest_broker: Literal["mosquitto", "rabbitmq"] = "mosquitto"
    ingest_amqp_url: SecretStr | None = None  # amqp(s)://user:password@host:5672/vhost
    ingest_queue: str = Field(default="fpverify.ingest.registry", min_length=1, max_length=200)

    # Domain
    validate_templates: bool = True  # uploads must decode with matcher.Template.from_bytes (422 otherwise)
    duplicate_threshold: str = "fmr_1e-4"  # key of matcher.THRESHOLDS for the enrollment 1:N check
    # A score on matcher.compare's scale that replaces duplicate_threshold's (the demo's synthetic fingers)
    duplicate_threshold_score: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    # Impostor cohort of each new template (issue 17, server/cohort.py): this many other holders'
    # active templates (at least matcher.decision.MIN_COHORT = 300), or 0 for none (the raw rule).
    cohort_size: int = Field(default=640, ge=0, le=100000)
    bedside_recheck_hours: float = 24.0
    feed_page_limit: int = 1000
    # Per-site feed (issue 18): `registered` and `fetched` holder-site assignments end this many days
    # after the holder was last seen there; a station may fetch this many cards a minute on demand.
    site_assignment_days: float = Field(default=90.0, gt=0, le=3650)
    card_fetch_per_minute: int = Field(default=60, ge=1, le=10000)

    # Trust (signed results, registry CA). With ca_dir set, ingest verifies each result's signature
    # against the certificate the CA issued to its device and rejects replays (see docs/trust.md).
    ca_dir: Path | None = None
    replay_window: int = 1000
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None

    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @field_validator("duplicate_threshold")
    @classmethod
    def _known_operating_point(cls, name: str) -> str:
        from fpverify.matcher import known_point

        return known_point(name)

    @field_validator("cohort_size")
    @classmethod
    def _cohort_size(cls, n: int) -> int:
        from fpverify.matcher.decision import MIN_COHORT

        if 0 < n < MIN_COHORT:
            raise ValueError(f"cohort_size is 0 (off) or at least {MIN_COHORT}")
        return n

    @model_validator(mode="after")
    def _queue_broker_has_url(self) -> Settings:
        if self.ingest_broker == "rabbitmq" and self.ingest_amqp_url is None:
            raise ValueError("ingest_broker 'rabbitmq' needs FPVERIFY_INGEST_AMQP_URL (amqp://user:password@host:5672/vhost)")
        if self.ingest_amqp_url is not None:
            import pika  # checked here so `server check` / `server run` name it, not a worker's traceback

            url = self.ingest_amqp_url.get_secret_value()
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError("FPVERIFY_INGEST_AMQP_URL must start with amqp:// or amqps://")
            try:
                pika.URLParameters(url)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"FPVERIFY_INGEST_AMQP_URL is not a usable AMQP URL: {exc}") from None
        return self

    @property
    def relaxed(self) -> bool:
        """Demo or development mode: shown on every dashboard page."""
        return self.mode != "production"

    def check_for_production(self) -> None:
        """Refuse to serve real data with the built-in development secret (ConfigError says what to set)."""
        if not self.relaxed and self.national_id_key.get_secret_value() == DEV_SECRET:
            raise ConfigError(
                "FPVERIFY_NATIONAL_ID_KEY is the built-in development secret: set FPVERIFY_NATIONAL_ID_KEY to a "
                "random secret of your own (e.g. `openssl rand -hex 32`), or FPVERIFY_MODE=demo for a trial "
                "on made-up data")

    def check_files(self) -> None:
        """Every certificate, key and CA folder the settings name is there (ConfigError names the
        setting and the path), so `server run` stops at once instead of failing at its first TLS step.
        The MQTT files count only with mqtt_enabled."""
        problems = []
        for name, what in TLS_FILES:
            if name.startswith("mqtt_") and not self.mqtt_enabled:
                continue  # no ingest worker: the broker's files are not read
            path = getattr(self, name)
            if path is not None and not path.is_file():
                why = "is a folder" if path.is_dir() else "does not exist"
                problems.append(f"FPVERIFY_{name.upper()}: {path} {why} ({what})")
        if self.ca_dir is not None and not (self.ca_dir / "ca.crt").is_file():
            problems.append(f"FPVERIFY_CA_DIR: {self.ca_dir / 'ca.crt'} does not exist (the registry CA's "
                            f"certificate; create it with `fpverify server pki init --ca-dir {self.ca_dir}`)")
        if problems:
            raise ConfigError("; ".join(problems))


# Files a setting names, read when the registry serves or connects: (field, what it is).
TLS_FILES = (("mqtt_tls_ca", "the broker's CA certificate"), ("mqtt_tls_cert", "the registry's MQTT client certificate"),
             ("mqtt_tls_key", "its private key"), ("api_tls_cert", "the API's TLS certificate"),
             ("api_tls_key", "the API's TLS private key"))


def load_settings() -> Settings:
    """Settings from the environment; a ConfigError naming each bad variable instead of pydantic's dump."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FPVERIFY_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
