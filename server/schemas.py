"""Request and response bodies of the HTTP API (pydantic). Station-facing bodies come from edge.wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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


class UserIn(_In):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
    password: str = Field(min_length=10, max_length=1024)
    role: Role


class UserOut(_Out):
    id: int
    username: str
    role: Role
    frozen: bool
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None


class PasswordIn(_In):
    password: str = Field(min_length=10, max_length=1024)


class RoleIn(_In):
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


class DeviceOut(_Out):
    id: str
    site_id: str
    name: str | None
    disabled: bool
    online: bool
    last_seen: datetime | None
    cache_version: int | None
    software_version: str | None
    created_at: datetime


class DeviceWithToken(DeviceOut):
    token: str = Field(description="shown once; store it in the station's credentials")


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


class ResultOut(_Out):
    result_id: uuid.UUID
    device_id: str
    site_id: str
    card_number: str
    outcome: str
    purpose: str
    captured_at: datetime
    received_at: datetime
    score: float | None
    threshold: float | None
    finger: int | None
    delegate_id: str | None
    attempts: int
    quality: int | None
    operator_id: str | None
    detail: str | None


class DeadLetterOut(_Out):
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload_size: int
    payload_preview: str


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
    comment: str | None


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
    approvals: int = 0


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
