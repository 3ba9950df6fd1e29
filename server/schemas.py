"""Request and response bodies of the HTTP API (pydantic). Station-facing bodies come from edge.wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from fpverify.edge import wire
from fpverify.server.models import ApprovalAction, Role

Str64 = Field(min_length=1, max_length=64)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    role: Role
    expires_in: int


class PasswordChangeIn(_In):
    """Choose your own password (required after a one-time password); answers a token like login."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=10, max_length=1024)


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=1000)


class UserIn(ReasonIn):
    """A request for a new account (an approval); its one-time password goes to the approver."""

    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
    role: Role


class UserOut(_Out):
    id: int
    username: str
    role: Role
    frozen: bool
    must_change_password: bool
    created_by: str | None
    created_at: datetime
    last_login_at: datetime | None


class RoleIn(ReasonIn):
    role: Role


class SiteIn(_In):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)


class SiteOut(_Out):
    id: str
    name: str
    created_at: datetime


class DeviceIn(_In):
    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    site_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="new station", min_length=1, max_length=1000,
                        description="for the supervisor who approves the device's feed token")


class DeviceOut(_Out):
    id: str
    site_id: str
    name: str | None
    disabled: bool
    retired_at: datetime | None = None
    online: bool
    last_seen: datetime | None
    cache_version: int | None
    software_version: str | None
    created_at: datetime



class HolderIn(_In):
    card_number: str = Field(pattern=r"^[A-Za-z0-9-]{4,32}$")
    name: str = Field(min_length=1, max_length=200)
    national_id: str = Field(min_length=4, max_length=64, description="kept only as a keyed hash")


class HolderOut(_Out):
    card_number: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


class HolderDetail(HolderOut):
    consent_active: bool
    templates_active: int
    delegates: int


class BlockIn(_In):
    reason: str = Field(min_length=1, max_length=500)


class ConsentIn(_In):
    given_at: AwareDatetime
    scope: str = Field(min_length=1, max_length=200)
    witnessed_by: str = Str64


class ConsentOut(_Out):
    id: int
    card_number: str
    given_at: datetime
    scope: str
    witnessed_by: str
    recorded_by: str
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class WithdrawOut(BaseModel):
    consent: ConsentOut
    templates_purged: int


class DelegateIn(_In):
    name: str = Field(min_length=1, max_length=200)
    national_id: str = Field(min_length=4, max_length=64)
    relation: str | None = Field(default=None, max_length=64)
    valid_from: AwareDatetime
    valid_until: AwareDatetime


class DelegateOut(_Out):
    id: str
    card_number: str
    name: str
    relation: str | None
    valid_from: datetime
    valid_until: datetime
    created_at: datetime


class TemplateMeta(_Out):
    """Template metadata only: the biometric bytes never leave through the staff API."""

    id: str
    card_number: str
    enrollment_id: str
    role: str
    delegate_id: str | None
    finger: int
    quality: int
    status: str
    enrolled_by: str
    device_id: str
    site_id: str | None
    enrolled_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


class EnrollmentOut(BaseModel):
    status: Literal["enrolled", "pending_review", "rejected"]
    card_number: str
    template_ids: list[str]
    feed_version: int
    enrollment_id: str


def _result_out_fields() -> dict:
    """ResultOut follows the stored record (models.results.RECORD_FIELDS, i.e. the wire fields):
    same names and types, without the wire's input constraints (the rows were validated on the way in)."""
    from fpverify.edge.wire import VerificationResult
    from fpverify.server.models.results import RECORD_FIELDS, nullable, plain_type

    fields = {}
    for name in RECORD_FIELDS:
        info = VerificationResult.model_fields[name]
        py = plain_type(info)
        fields[name] = (py | None if nullable(info) else py, ...)
    fields["received_at"] = (datetime, ...)
    return fields


ResultOut = create_model("ResultOut", __base__=_Out, __module__=__name__, **_result_out_fields())

# What a hospital system (role his) learns of one result: what the station told it, for a billing
# check; no score, finger, quality, delegate, detail or counter, and never a template or an image.
HIS_RESULT_FIELDS = ("result_id", "outcome", "card_number", "device_id", "site_id", "captured_at", "purpose",
                     "operator_id")
SignatureStatus = Literal["verified", "not_checked", "unsigned"]
HisResultOut = create_model(
    "HisResultOut", __base__=_Out, __module__=__name__,
    **{n: (ResultOut.model_fields[n].annotation, ...) for n in HIS_RESULT_FIELDS},
    signature=(SignatureStatus, Field(description=(
        "verified: signed by the device's key and checked against the registry CA at ingest; "
        "not_checked: signed, but this registry has no CA folder (demo, development); unsigned"))),
)


class DeadLetterOut(_Out):
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload_size: int
    payload_preview: str


class AlertNoteOut(_Out):
    id: int
    alert_id: int
    at: datetime
    author: str
    kind: str
    text: str


class AlertOut(_Out):
    id: int
    kind: str
    result_id: uuid.UUID | None
    card_number: str | None
    device_id: str | None
    site_id: str | None
    card_retained: bool
    raised_at: datetime
    status: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    comment: str | None  # the latest note's text
    notes: list[AlertNoteOut] = []


class NoteIn(_In):
    text: str = Field(min_length=1, max_length=2000)


class CommentIn(_In):
    comment: str | None = Field(default=None, max_length=2000)


class ResolveIn(_In):
    comment: str = Field(min_length=1, max_length=2000)


class StayIn(_In):
    card_number: str = Field(pattern=r"^[A-Za-z0-9-]{4,32}$")
    site_id: str = Field(min_length=1, max_length=64)
    admitted_at: AwareDatetime
    ward: str | None = Field(default=None, max_length=64)
    bed: str | None = Field(default=None, max_length=32)
    recheck_interval_hours: float | None = Field(default=None, gt=0, le=336)


class DischargeIn(_In):
    discharged_at: AwareDatetime | None = None


class StayOut(_Out):
    id: int
    card_number: str
    site_id: str
    ward: str | None
    bed: str | None
    admitted_at: datetime
    discharged_at: datetime | None
    recheck_interval_hours: float
    admitted_by: str


class OverdueOut(BaseModel):
    stay: StayOut
    last_check: datetime | None
    due_at: datetime
    hours_overdue: float


class ApprovalIn(_In):
    action: ApprovalAction
    target: str = Field(min_length=1, max_length=64)
    param: str | None = Field(default=None, max_length=64)
    reason: str = Field(min_length=1, max_length=1000)


class ApprovalOut(_Out):
    id: int
    action: str
    target: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: str
    decided_at: datetime | None
    param: str | None = None
    approvals: int = 0
    one_time_password: str | None = None  # only in the answer to the approval that created it
    device_token: str | None = None  # likewise, for a device_token approval: to install on the station


class DeviceRegistered(DeviceOut):
    """A device registered through the API: no feed access until a supervisor approves `approval`."""

    approval: ApprovalOut


class AuditOut(_Out):
    seq: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before_digest: str | None
    after_digest: str | None
    note: str | None
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    bad_seq: int | None
    problem: str | None


class Health(BaseModel):
    status: Literal["ok"]
    database: bool
    ingest: dict | None


class StaffEnrollIn(ReasonIn):
    """A clerk's sign-in for the stations of one site: finger templates captured with the clerk
    present and, optionally, the PIN the clerk typed (hashed at once, never stored or shown)."""

    site_id: str = Field(min_length=1, max_length=64)
    fingers: list[wire.EnrolledFinger] = Field(min_length=1, max_length=4)
    pin: str | None = Field(default=None, min_length=6, max_length=12, repr=False)


class StaffCredentialOut(BaseModel):
    id: str
    user_id: int
    username: str
    site_id: str
    status: str
    has_pin: bool
    fingers: list[int]
    requested_by: str
    created_at: datetime
    decided_at: datetime | None = None


class StaffEnrollOut(BaseModel):
    credential_id: str
    approval: ApprovalOut
