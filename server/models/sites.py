"""Sites (hospitals, clinics) and their stations (devices)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(Base):
    """A verification station. `token_hash` is the SHA-256 of its API token (shown once)."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # for good (crud.devices)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Presence from MQTT (retained status + last will) and from results.
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cache_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # as reported by the device
    software_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notified_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # last TemplatesChanged sent
