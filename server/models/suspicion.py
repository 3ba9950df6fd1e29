"""Suspicion points (疑点) marked handled. The points themselves are computed from the records
(server/dashboard/suspicion_rules.py); a mark names one point by its kind and key, so a point stays visible
as handled with who, when and the note. Marks are never overwritten; each is audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow

SUSPICION_KINDS = ("travel", "repeat", "overdue", "device")


class SuspicionMark(Base):
    __tablename__ = "suspicion_marks"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_suspicion_marks_kind_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of SUSPICION_KINDS
    key: Mapped[str] = mapped_column(String(200))  # the point's identity within its kind (queries.*.key)
    handled_by: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(String(2000))

    def audit_id(self) -> str:
        """The entity_id of the mark's audit row (audit.KEPT re-checks the mark against it)."""
        return f"{self.kind}:{self.key}"
