"""The wire contract between stations and the registry: versioned message models and topics.

The registry imports this module and nothing else from `edge`. Models forbid unknown fields so a
malformed or forged payload fails validation instead of being half-read. Bump WIRE_VERSION (and
keep the old model) for any change an old peer cannot read; adding an optional field is not one.
"""

from __future__ import annotations

import base64
import enum
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from fpverify.edge.presses import ENROLL_PRESSES, MAX_PRESSES, MIN_PRESSES  # noqa: F401  (re-exported)

WIRE_VERSION = 1
TOPIC_ROOT = "fpverify/v1/devices"

# Identifiers travel in topics: keep them to a safe alphabet (no '/', '+', '#').
DeviceId = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
CardNumber = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9-]{4,32}$")]
# The matcher's scale (docs/matcher.md "Score scale"): 0 = nothing alike, 1 = identical; its
# thresholds (matcher.THRESHOLDS) are on the same scale.
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _b64decode(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ValueError("not valid base64") from exc


# Binary fields (templates) are base64 strings on the wire and bytes in Python.
B64Bytes = Annotated[
    bytes,
    BeforeValidator(_b64decode),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"),
]


def _utc_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_utc_aware)]


class Outcome(enum.StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    NOT_ENROLLED = "not_enrolled"
    CARD_BLOCKED = "card_blocked"
    POOR_QUALITY = "poor_quality"
    SENSOR_ERROR = "sensor_error"
    DELEGATE_MATCH = "delegate_match"


class HolderRole(enum.StrEnum):
    HOLDER = "holder"
    DELEGATE = "delegate"


class Purpose(enum.StrEnum):
    """Where in the patient's path the check happened (the regulation names each desk)."""

    REGISTRATION = "registration"
    ADMISSION = "admission"
    BILLING = "billing"
    PHARMACY = "pharmacy"
    BEDSIDE = "bedside"


class Topics:
    """MQTT topics of one device. The registry subscribes with wildcards over TOPIC_ROOT."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        base = f"{TOPIC_ROOT}/{device_id}"
        self.results = f"{base}/results"
        self.status = f"{base}/status"
        self.templates_notify = f"{base}/templates"

    ALL_RESULTS = f"{TOPIC_ROOT}/+/results"
    ALL_STATUS = f"{TOPIC_ROOT}/+/status"

    @staticmethod
    def shared_results(group: str = "registry") -> str:
        """MQTT 5 shared subscription: registry replicas split the results between them."""
        return f"$share/{group}/{Topics.ALL_RESULTS}"

    @staticmethod
    def device_of(topic: str) -> str | None:
        parts = topic.split("/")
        if len(parts) == 5 and "/".join(parts[:3]) == TOPIC_ROOT:
            return parts[3]
        return None


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_delegate(role: HolderRole, delegate_id: str | None) -> None:
    if (role == HolderRole.DELEGATE) != (delegate_id is not None):
        raise ValueError("delegate_id is required for role 'delegate' and must be absent for 'holder'")


class VerificationResult(_Msg):
    """One verification at a station, published to Topics.results with QoS 1.

    The one definition of a verification record: the registry derives its table, ingest rows, API
    schema and dashboard columns from these fields (server/models/results.py), so a field added
    here is added everywhere (and needs a migration there).
    """

    kind: Literal["verification_result"] = "verification_result"
    v: Literal[1] = 1
    result_id: UUID  # UUIDv7: time-ordered; the registry drops duplicates by it
    device_id: DeviceId
    site_id: str = Field(min_length=1, max_length=64)
    card_number: CardNumber
    outcome: Outcome
    purpose: Purpose
    captured_at: AwareDatetime
    score: Score | None = None  # the best comparison score (None when nothing was compared)
    threshold: Score | None = None  # the decision threshold the station applied
    finger: int | None = Field(default=None, ge=0, le=10)  # ISO finger position of the matched template
    delegate_id: str | None = Field(default=None, max_length=64)  # set for delegate_match
    attempts: int = Field(default=1, ge=0, le=20)
    quality: int | None = Field(default=None, ge=0, le=100)
    operator_id: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=500)  # e.g. the sensor error; never biometric data
    # Filled by the trust layer (signed results): per-device monotonic counter and signature.
    counter: int | None = Field(default=None, ge=0)
    signature: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _delegate_named(self) -> VerificationResult:
        if self.outcome == Outcome.DELEGATE_MATCH and self.delegate_id is None:
            raise ValueError("a delegate_match names the delegate (delegate_id)")
        return self


class DeviceStatus(_Msg):
    """Retained presence message on Topics.status; the broker publishes the 'offline' will."""

    kind: Literal["device_status"] = "device_status"
    v: Literal[1] = 1
    device_id: DeviceId
    state: Literal["online", "offline"]
    at: AwareDatetime | None = None
    cache_version: int | None = Field(default=None, ge=0)
    software_version: str | None = Field(default=None, max_length=32)


class TemplatesChanged(_Msg):
    """Registry -> device on Topics.templates_notify: the feed has reached `version`; pull it."""

    kind: Literal["templates_changed"] = "templates_changed"
    v: Literal[1] = 1
    version: int = Field(ge=0)


class TemplateAdd(_Msg):
    op: Literal["add"] = "add"
    version: int = Field(ge=1)
    template_id: str = Field(min_length=1, max_length=64)
    card_number: CardNumber
    role: HolderRole = HolderRole.HOLDER
    delegate_id: str | None = Field(default=None, max_length=64)
    valid_until: AwareDatetime | None = None  # delegates have a validity window
    finger: int = Field(ge=0, le=10)
    quality: int = Field(ge=0, le=100)
    template: Annotated[B64Bytes, Field(min_length=8, max_length=65536)]
    # Impostor-cohort statistics (issue 17): mean and sd of the template's scores against other
    # holders' templates, from the registry's enrollment; both or neither. Absent: the raw rule.
    cohort_mean: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    cohort_sd: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _delegate(self) -> TemplateAdd:
        _check_delegate(self.role, self.delegate_id)
        if (self.cohort_mean is None) != (self.cohort_sd is None):
            raise ValueError("cohort_mean and cohort_sd come together or not at all")
        return self


class TemplateRevoke(_Msg):
    op: Literal["revoke"] = "revoke"
    version: int = Field(ge=1)
    template_id: str = Field(min_length=1, max_length=64)
    card_number: CardNumber


class CardStatus(_Msg):
    op: Literal["card"] = "card"
    version: int = Field(ge=1)
    card_number: CardNumber
    status: Literal["active", "blocked"]


class CardHeld(_Msg):
    """The site's hold on a card changed (issue 18): `site` (enrolled, admitted or registered there:
    the station keeps it), `fetched` (fetched on demand: the station's eviction policy may drop it),
    `none` (no longer assigned to the site: drop the card, its templates and its status). A new
    hold is followed by the card's active templates and its status."""

    op: Literal["hold"] = "hold"
    version: int = Field(ge=1)
    card_number: CardNumber
    held: Literal["site", "fetched", "none"]


TemplateChange = Annotated[TemplateAdd | TemplateRevoke | CardStatus | CardHeld, Field(discriminator="op")]


class TemplateFeed(_Msg):
    """GET /api/v1/devices/{device_id}/templates?since=V: changes after version V, in order."""

    v: Literal[1] = 1
    since: int = Field(ge=0)
    version: int = Field(ge=0)  # the feed's version after applying `changes`
    changes: list[TemplateChange] = Field(default_factory=list, max_length=10000)
    more: bool = False  # another page follows from `version`


class CardRecord(_Msg):
    """GET /api/v1/devices/{device_id}/cards/{card_number}: one card fetched on demand (issue 18).

    True as of feed version `version`: every later change about the card reaches the device through
    its site's feed (the fetch assigns the holder to the site). `templates` are the holder's and
    the valid delegates' active ones (their `version` is `version`)."""

    kind: Literal["card_record"] = "card_record"
    v: Literal[1] = 1
    card_number: CardNumber
    status: Literal["active", "blocked"]
    held: Literal["site", "fetched"]
    version: int = Field(ge=1)
    templates: list[TemplateAdd] = Field(default_factory=list, max_length=200)


class Consent(_Msg):
    """PIPL separate consent for biometric processing, recorded at enrollment."""

    given_at: AwareDatetime
    scope: str = Field(min_length=1, max_length=200)
    witnessed_by: str = Field(min_length=1, max_length=64)  # operator id


class EnrolledFinger(_Msg):
    finger: int = Field(ge=0, le=10)
    templates: list[Annotated[B64Bytes, Field(min_length=8, max_length=65536)]] = Field(
        min_length=MIN_PRESSES, max_length=MAX_PRESSES)
    qualities: list[Annotated[int, Field(ge=0, le=100)]] = Field(min_length=MIN_PRESSES, max_length=MAX_PRESSES)

    @model_validator(mode="after")
    def _paired(self) -> EnrolledFinger:
        if len(self.qualities) != len(self.templates):
            raise ValueError("one quality per template")
        return self


class EnrollmentUpload(_Msg):
    """Station -> registry over HTTPS: POST /api/v1/enrollments."""

    v: Literal[1] = 1
    enrollment_id: UUID
    device_id: DeviceId
    card_number: CardNumber
    role: HolderRole = HolderRole.HOLDER
    delegate_id: str | None = Field(default=None, max_length=64)
    operator_id: str = Field(min_length=1, max_length=64)
    consent: Consent
    fingers: list[EnrolledFinger] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _consistent(self) -> EnrollmentUpload:
        _check_delegate(self.role, self.delegate_id)
        positions = [f.finger for f in self.fingers]
        if len(set(positions)) != len(positions):
            raise ValueError("each finger position appears once")
        return self


class StaffTemplate(_Msg):
    """One template of a clerk's finger, for signing in at the station (never a patient's)."""

    template_id: str = Field(min_length=1, max_length=64)
    finger: int = Field(ge=0, le=10)
    quality: int = Field(ge=0, le=100)
    template: Annotated[B64Bytes, Field(min_length=8, max_length=65536)]


class StaffMember(_Msg):
    """A clerk of the device's site. A frozen account comes without templates or PIN hash: the station
    learns it is frozen (and ends its shift) but holds nothing it could sign in with."""

    operator_id: str = Field(min_length=1, max_length=64)  # the registry account's user name
    status: Literal["active", "frozen"]
    pin_hash: str | None = Field(default=None, max_length=255, pattern=r"^\$argon2id\$")  # never a plain PIN
    templates: list[StaffTemplate] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def _frozen_holds_nothing(self) -> StaffMember:
        if self.status == "frozen" and (self.templates or self.pin_hash):
            raise ValueError("a frozen account carries no templates and no PIN hash")
        return self


class StaffFeed(_Msg):
    """GET /api/v1/devices/{device_id}/staff: the whole list of the site's clerks (a snapshot; the
    station replaces its list with it and refuses one older than the list it holds)."""

    v: Literal[1] = 1
    site_id: str = Field(min_length=1, max_length=64)
    generated_at: AwareDatetime
    staff: list[StaffMember] = Field(default_factory=list, max_length=2000)


ENVELOPE_FIELDS = frozenset({"kind", "v"})  # message framing, not part of the stored record

SCHEMA_MODELS = (VerificationResult, DeviceStatus, TemplatesChanged, TemplateFeed, EnrollmentUpload, StaffFeed,
                 CardRecord)


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every message, for docs/wire/ and for peers written in other languages."""
    out = {}
    for m in SCHEMA_MODELS:
        schema = m.model_json_schema(mode="serialization")
        schema["$id"] = f"https://fpverify.invalid/wire/v{WIRE_VERSION}/{m.__name__}.json"
        out[m.__name__] = schema
    return out


def schema_files() -> dict[str, str]:
    """File name -> text of docs/wire/ (stable formatting, so a diff shows real changes)."""
    import json

    return {f"{name}.json": json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, schema in json_schemas().items()}


def write_schemas(folder) -> list[str]:
    """Write docs/wire/*.json; returns the names written. `fpverify edge wire-schemas` calls it."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files().items():
        (folder / name).write_text(text, encoding="utf-8")
    return sorted(schema_files())


# --- signed results (added by the trust layer, issue 7) ----------------------------------------
SIGNING_DOMAIN = b"fpverify/v1/verification_result\n"


def signing_payload(result: VerificationResult) -> bytes:
    """The exact bytes a station signs and the registry verifies: a domain tag, then canonical JSON.

    Canonical JSON: every field except `signature`, fields whose value is None left out (so a later
    optional field does not change old signatures), keys sorted, no spaces, UTF-8. Values use the
    model's JSON serialisation, which round-trips (parsing the published JSON and calling this again
    gives the same bytes). The counter is inside, so it is signed too.
    """
    import json

    body = result.model_dump(mode="json", exclude={"signature"}, exclude_none=True)
    return SIGNING_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                       ensure_ascii=False, allow_nan=False).encode("utf-8")
