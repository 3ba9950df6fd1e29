"""Notes on alerts (the alerts themselves are in models/results.py, next to the results that raise them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class AlertNote(Base):
    """One note on an alert (acknowledgement, resolution, or a note in between), never overwritten;
    Alert.comment repeats the latest. The audit log keeps each note whole by digest (audit.KEPT)."""

    __tablename__ = "alert_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # acknowledge | resolve | note
    text: Mapped[str] = mapped_column(String(2000))
