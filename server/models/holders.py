"""Card holders, their biometric consents, delegates, enrollments and templates."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class HolderStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


class CardHolder(Base):
    """An insured person. The national id is kept only as an HMAC under the registry's key."""

    __tablename__ = "card_holders"

    card_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    national_id_hmac: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=HolderStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Consent(Base):
    """PIPL separate consent for biometric processing. Withdrawal purges the templates."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), index=True)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(200))
    witnessed_by: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Delegate(Base):
    """A person authorised to collect medicine for the holder (代取药), within a validity window."""

    __tablename__ = "delegates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    national_id_hmac: Mapped[str] = mapped_column(String(64))
    relation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnrollmentStatus(enum.StrEnum):
    ENROLLED = "enrolled"
    PENDING_REVIEW = "pending_review"  # a 1:N hit on another holder: two supervisors must approve
    REJECTED = "rejected"


class Enrollment(Base):
    """One upload from a station (idempotent by the station's enrollment id)."""

    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    delegate_id: Mapped[str | None] = mapped_column(ForeignKey("delegates.id"), nullable=True)
    device_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    operator_id: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(64))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id"))
    status: Mapped[str] = mapped_column(String(16))
    duplicate_of: Mapped[str | None] = mapped_column(String(32), nullable=True)  # other card number
    duplicate_score: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TemplateStatus(enum.StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # held with its enrollment until the duplicate review approves it
    REVOKED = "revoked"


class Template(Base):
    """One fingerprint template (never an image). `data` is cleared when revoked or purged."""

    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), index=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="holder")
    delegate_id: Mapped[str | None] = mapped_column(ForeignKey("delegates.id"), nullable=True)
    finger: Mapped[int] = mapped_column(Integer)
    quality: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    enrolled_by: Mapped[str] = mapped_column(String(64))  # operator id at the station
    device_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Impostor-cohort statistics (issue 17, server/cohort.py): mean and sd of the template's scores
    # against other holders' active templates; null when the cohort was too small (raw rule).
    cohort_mean: Mapped[float | None] = mapped_column(nullable=True)
    cohort_sd: Mapped[float | None] = mapped_column(nullable=True)
