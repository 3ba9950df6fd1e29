"""All registry settings in one place (environment variables with the prefix FPVERIFY_).

Example: FPVERIFY_DATABASE_URL=postgresql+psycopg://registry@db/fpverify fpverify server run
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-not-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FPVERIFY_", env_file=None, extra="ignore")

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

    # Authentication
    token_ttl_minutes: int = 8 * 60
    login_max_failures: int = 5
    lockout_minutes: int = 15

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
    # Messages the broker may send before we acknowledge (MQTT 5 Receive Maximum).
    ingest_receive_maximum: int = 2000

    # Domain
    validate_templates: bool = True  # uploads must decode with matcher.Template.from_bytes (422 otherwise)
    duplicate_threshold: str = "fmr_1e-4"  # key of matcher.THRESHOLDS for the enrollment 1:N check
    bedside_recheck_hours: float = 24.0
    feed_page_limit: int = 1000

    # Trust (signed results, registry CA). With ca_dir set, ingest verifies each result's signature
    # against the certificate the CA issued to its device and rejects replays (see docs/trust.md).
    ca_dir: Path | None = None
    require_signed_results: bool = False  # True in production once every station is provisioned
    replay_window: int = 1000
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
