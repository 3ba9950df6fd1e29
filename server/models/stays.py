"""Inpatient stays: bedside re-checks catch patients registered but absent (挂床住院)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class InpatientStay(Base):
    __tablename__ = "inpatient_stays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    ward: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bed: Mapped[str | None] = mapped_column(String(32), nullable=True)
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recheck_interval_hours: Mapped[float] = mapped_column(Float)
    admitted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
