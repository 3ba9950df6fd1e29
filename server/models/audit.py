"""Tamper-evident audit log rows (see server/audit.py for the chain logic)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, event, insert
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """One write. `hash` = sha256(prev_hash + canonical fields); `seq` has no gaps."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(200))
    before_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    after_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)  # never personal data
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip (single row, id 1): catches deletion of the newest rows too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


GENESIS = "0" * 64


@event.listens_for(AuditHead.__table__, "after_create")
def _seed_head(target, connection, **_kw):
    connection.execute(insert(AuditHead.__table__).values(id=1, seq=0, hash=GENESIS))
