"""Sites (hospitals, clinics) and their stations (devices)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
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


class AssignmentReason(enum.StrEnum):
    """Why a site's stations hold a card holder's templates, strongest first (issue 18)."""

    ENROLLED = "enrolled"  # enrolled at a station of the site: for good
    ADMITTED = "admitted"  # an open inpatient stay there; becomes `registered` at discharge
    REGISTERED = "registered"  # seen there recently (a discharge, a registration): expires
    FETCHED = "fetched"  # fetched on demand by a station of the site: expires, the station may evict


class HolderSite(Base):
    """A card holder assigned to a site: the site's template feed carries the holder's templates
    and card status (server/crud/sites.py). `registered` and `fetched` ones expire
    `settings.site_assignment_days` after `last_seen`."""

    __tablename__ = "holder_sites"

    card_number: Mapped[str] = mapped_column(ForeignKey("card_holders.card_number"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # A site's holders, and its expiring ones (checked at each feed pull of the site) by a range scan.
    __table_args__ = (Index("ix_holder_sites_site_reason_seen", "site_id", "reason", "last_seen"),)
