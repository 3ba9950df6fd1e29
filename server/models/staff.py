"""Staff credentials for signing in at a station (a clerk's shift): fingerprint templates and a PIN
hash per account, kept apart from card holders' templates (they never enter the template feed and
are never compared with a patient's finger).

A credential is enrolled for one site by a sysadmin and takes effect only when a supervisor
approves it (the `staff_credential` special operation, server/crud/approvals.py): a credential is a
login, so no one person may create one (a sysadmin enrolling their own finger as a clerk would sign
results in that clerk's name). Replacing or revoking it takes the old templates out of the registry.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class CredentialStatus(enum.StrEnum):
    PENDING = "pending"  # filed; waits for a supervisor's approval
    ACTIVE = "active"  # in the staff feed of the site's stations
    REJECTED = "rejected"  # the approval was rejected; templates purged
    REVOKED = "revoked"  # replaced by a newer credential or revoked; templates purged


class StaffCredential(Base):
    __tablename__ = "staff_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    pin_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # Argon2id; never the PIN
    status: Mapped[str] = mapped_column(String(16), default=CredentialStatus.PENDING, index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StaffTemplate(Base):
    """One template of a clerk's finger. Deleted (not kept as history) when its credential ends."""

    __tablename__ = "staff_templates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("staff_credentials.id", ondelete="CASCADE"), index=True)
    finger: Mapped[int] = mapped_column(Integer)
    quality: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
