"""Station settings: one TOML file (see firmware_cfg/edge.example.toml), validated by pydantic.

Secrets (the cache key, the device token, the MQTT password) are never in the TOML itself: each is
read from a root-only file or from a systemd credential ($CREDENTIALS_DIRECTORY/<name>, set up by
LoadCredential= in the unit), so the config file can be world-readable.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fpverify.edge.wire import DeviceId, Purpose


class ConfigError(Exception):
    """The config file or a secret it names is missing or malformed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Secret(_Section):
    """Where a secret lives: a systemd credential name (preferred) or a file; the first found wins."""

    credential: str | None = None
    file: Path | None = None

    def configured(self) -> bool:
        return bool(self.credential or self.file)

    def path(self) -> Path:
        if self.credential:
            cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
            if cred_dir and (Path(cred_dir) / self.credential).is_file():
                return Path(cred_dir) / self.credential
        if self.file:
            return self.file
        where = f"credential {self.credential!r}" if self.credential else "no credential or file configured"
        raise ConfigError(f"secret not found: {where} ($CREDENTIALS_DIRECTORY is "
                          f"{os.environ.get('CREDENTIALS_DIRECTORY', 'unset')})")

    def read_bytes(self, private: bool = True) -> bytes:
        path = self.path()
        try:
            st = path.stat()
            if private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"secret file {path} is accessible to group/others: chmod 600 it")
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc.strerror or exc}") from exc

    def read_text(self, private: bool = True) -> str:
        return self.read_bytes(private).decode("utf-8").strip()


class StationSection(_Section):
    device_id: DeviceId
    site_id: str = Field(min_length=1, max_length=64)
    purpose: Purpose = Purpose.REGISTRATION
    threshold: str = "fmr_1e-4"  # a key of matcher.THRESHOLDS: the operating point
    # A score on matcher.compare's scale that replaces the operating point's (the demo's synthetic
    # fingers); None: the operating point decides.
    threshold_score: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    min_quality: int = Field(default=40, ge=0, le=100)  # below this the patient is asked to press again
    max_attempts: int = Field(default=3, ge=1, le=10)
    capture_wait_s: float = Field(default=10.0, gt=0, le=120)
    card_socket: Path | None = None  # unix socket a card reader service writes card numbers to; else stdin
    history_days: int = Field(default=90, ge=1)  # how long acknowledged result ids are kept
    # Sign each result (counter + ECDSA P-256) with the key of the MQTT client certificate (edge/signing.py)
    sign_results: bool = False

    @field_validator("threshold")
    @classmethod
    def _known_operating_point(cls, name: str) -> str:
        from fpverify.matcher import known_point

        return known_point(name)


class SensorSection(_Section):
    port: str = "/dev/fpsensor"
    baud: int = Field(default=57600, ge=9600, le=115200)
    address: int = Field(default=0xFFFFFFFF, ge=0, le=0xFFFFFFFF)
    password: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    timeout_s: float = Field(default=3.0, gt=0, le=30)
    packet_size: Literal[32, 64, 128, 256] = 128


class CacheSection(_Section):
    path: Path = Path("/var/lib/fpverify/station.db")
    key: Secret = Field(default_factory=lambda: Secret(credential="fpverify-cache-key",
                                                       file=Path("/etc/fpverify/cache.key")))


class FetchSection(_Section):
    """Cards not in the cache (issue 18): fetched from the registry on demand when online, kept, and
    evicted by the site's policy (`[registry.fetch]`). Cards the site's feed holds are never evicted
    here, only by the feed."""

    enabled: bool = True  # false: a card not in the cache is `not_enrolled` here at once
    timeout_s: float = Field(default=3.0, gt=0, le=30)  # each try; the desk waits at most tries x this
    tries: int = Field(default=2, ge=1, le=5)
    offline_s: float = Field(default=10.0, ge=0, le=600)  # after an unreachable registry, do not wait again for this long
    max_cards: int = Field(default=5000, ge=0, le=1_000_000)  # fetched cards kept; the least recently used go first
    idle_days: float = Field(default=30.0, gt=0, le=3650)  # a fetched card not used for this long is evicted


class RegistrySection(_Section):
    url: str | None = None  # https://registry.example.org ; None: no template sync (offline only)
    device_token: Secret = Field(default_factory=lambda: Secret(credential="fpverify-device-token"))
    ca_file: Path | None = None  # private CA of the registry; None: the system trust store
    sync_interval_s: float = Field(default=300.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    page_limit: int = Field(default=500, ge=1, le=10000)
    fetch: FetchSection = Field(default_factory=FetchSection)


class MqttSection(_Section):
    host: str | None = None  # None: no MQTT (results stay in the outbox)
    port: int = Field(default=8883, ge=1, le=65535)
    version: Literal["5", "3.1.1"] = "5"
    ca_file: Path | None = None  # setting it turns TLS on
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    username: str | None = None
    password: Secret = Field(default_factory=Secret)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    window: int = Field(default=20, ge=1, le=1000)  # results in flight (awaiting PUBACK) at once
    resend_after_s: float = Field(default=60.0, gt=0)  # republish an unacknowledged result after this

    @model_validator(mode="after")
    def _cert_pair(self) -> MqttSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt.cert_file and mqtt.key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs TLS: set mqtt.ca_file")
        return self


class KioskSection(_Section):
    """The patient's screen: a page served by the station to the local Chromium (edge/kiosk)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # the page is for the screen beside the sensor: keep it on localhost
    port: int = Field(default=8470, ge=0, le=65535)  # 0: any free port (tests, the demo's several desks)
    language: Literal["zh_CN", "en"] = "zh_CN"  # first language of the page; English selectable on it
    outcome_hold_s: float = Field(default=8.0, gt=0, le=300)  # then back to "present your card"


class HisSection(_Section):
    """The desk's hospital information system drives checks over a local HTTP API (edge/kiosk/his.py)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # or the desk's LAN address, where the HIS runs on the clerk's PC
    port: int = Field(default=8471, ge=0, le=65535)
    token: Secret = Field(default_factory=lambda: Secret(credential="fpverify-his-token"))
    max_wait_s: float = Field(default=60.0, gt=0, le=600)  # longest long poll the API grants

    @model_validator(mode="after")
    def _token(self) -> HisSection:
        if self.enabled and not self.token.configured():
            raise ValueError("his.enabled needs his.token (a credential or a file)")
        return self


class ShiftSection(_Section):
    """A clerk's shift at the desk (edge/kiosk/shift.py): opened with the clerk's own finger (staff
    templates from the registry's staff feed) or their PIN, ended by sign-out or timeout."""

    required: bool = False  # true: no verification without an open shift; results carry its operator
    timeout_s: float = Field(default=900.0, gt=0, le=86400)  # idle: no check for this long ends the shift
    max_s: float = Field(default=43200.0, gt=0, le=172800)  # no shift lasts longer (12 h by default)
    pin: bool = True  # the PIN fallback (a finger that does not read, a cut finger)
    pin_free_failures: int = Field(default=3, ge=1, le=10)  # wrong PINs in a row before the waits start
    pin_delay_s: float = Field(default=30.0, gt=0, le=3600)  # first wait; doubles with each failure
    pin_max_failures: int = Field(default=10, ge=1, le=100)  # then the PIN is off until a finger sign-in
    staff_sync_s: float = Field(default=300.0, gt=0)  # staff list pulled this often (and on notification)


class EdgeConfig(_Section):
    station: StationSection
    sensor: SensorSection = Field(default_factory=SensorSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    registry: RegistrySection = Field(default_factory=RegistrySection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    kiosk: KioskSection = Field(default_factory=KioskSection)
    his: HisSection = Field(default_factory=HisSection)
    shift: ShiftSection = Field(default_factory=ShiftSection)


def load_config(path: str | os.PathLike) -> EdgeConfig:
    """Read and validate the TOML file; every problem comes back as one ConfigError naming the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    try:
        cfg = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config {path}: {problems}") from exc
    # Relative paths are relative to the config file, so a test or a bench can ship a folder.
    base = path.parent
    cfg.cache.path = _rel(base, cfg.cache.path)
    for secret in (cfg.cache.key, cfg.registry.device_token, cfg.mqtt.password, cfg.his.token):
        if secret.file is not None:
            secret.file = _rel(base, secret.file)
    for sec, names in ((cfg.registry, ("ca_file",)), (cfg.mqtt, ("ca_file", "cert_file", "key_file")),
                       (cfg.station, ("card_socket",))):
        for name in names:
            value = getattr(sec, name)
            if value is not None:
                setattr(sec, name, _rel(base, value))
    return cfg


# Files the config names that the station reads when it connects: (section, field, what it is).
CERT_FILES = (("registry", "ca_file", "the registry's CA certificate"), ("mqtt", "ca_file", "the broker's CA certificate"),
         ("mqtt", "cert_file", "the station's client certificate"), ("mqtt", "key_file", "the station's private key"))


def check_files(cfg: EdgeConfig) -> None:
    """Every certificate and key file the config names exists: a ConfigError naming the setting and
    the file otherwise (rather than an SSL error when the station first connects)."""
    problems = []
    for section, name, what in CERT_FILES:
        path = getattr(getattr(cfg, section), name)
        if path is not None and not path.is_file():
            why = "is a folder" if path.is_dir() else "does not exist"
            problems.append(f"{section}.{name}: {path} {why} ({what})")
    if problems:
        raise ConfigError("; ".join(problems))


def _rel(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else base / p
