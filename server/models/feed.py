"""The template feed: a totally ordered log of changes stations apply to their cache."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, event, insert
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class Counter(Base):
    """Named counters bumped with UPDATE .. RETURNING, which serialises writers (feed versions)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class FeedChange(Base):
    """op = add | revoke | card | hold. Versions come from Counter 'feed' so they commit in order."""

    __tablename__ = "feed_changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    op: Mapped[str] = mapped_column(String(8))
    card_number: Mapped[str] = mapped_column(String(32))
    template_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # op=card: the status; op=hold: site|fetched|none
    # The site whose stations get the change; None: the registry's own log (the duplicate index,
    # history), never sent to a station (issue 18; before migration 0007 it meant every site).
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_feed_changes_site_version", "site_id", "version"),)


COUNTERS = ("feed",)


@event.listens_for(Counter.__table__, "after_create")
def _seed_counters(target, connection, **_kw):
    connection.execute(insert(Counter.__table__), [{"name": n, "value": 0} for n in COUNTERS])
