"""The suspicion rules (疑点) the dashboard shows: a card at two sites too fast, repeated failed
matches of one card, a desk with many poor presses. Read-only queries over verification records."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from fpverify.server.core.config import DashboardSettings
from fpverify.server.models import VerificationRecord

VR = VerificationRecord


@dataclass
class TravelHit:
    card_number: str
    first: VerificationRecord
    second: VerificationRecord

    @property
    def minutes(self) -> float:
        return (self.second.captured_at - self.first.captured_at).total_seconds() / 60


def impossible_travel(s: Session, since: datetime, minutes: float) -> list[TravelHit]:
    """Consecutive presentations of one card at two different sites less than `minutes` apart."""
    multi = (select(VR.card_number).where(VR.captured_at >= since).group_by(VR.card_number)
             .having(func.count(distinct(VR.site_id)) > 1))
    rows = s.scalars(select(VR).where(VR.captured_at >= since, VR.card_number.in_(multi))
                     .order_by(VR.card_number, VR.captured_at))
    hits: list[TravelHit] = []
    prev: VerificationRecord | None = None
    for r in rows:
        if (prev is not None and prev.card_number == r.card_number and prev.site_id != r.site_id
                and (r.captured_at - prev.captured_at) < timedelta(minutes=minutes)):
            hits.append(TravelHit(r.card_number, prev, r))
        prev = r
    hits.sort(key=lambda h: h.second.captured_at, reverse=True)
    return hits


@dataclass
class RepeatHit:
    card_number: str
    count: int
    sites: list[str]
    last_at: datetime


def repeated_no_match(s: Session, since: datetime, at_least: int) -> list[RepeatHit]:
    rows = s.execute(select(VR.card_number, func.count(), func.max(VR.captured_at))
                     .where(VR.outcome == "no_match", VR.captured_at >= since)
                     .group_by(VR.card_number).having(func.count() >= at_least)
                     .order_by(func.count().desc(), VR.card_number))
    hits = []
    for card, n, last in rows:
        if last is not None and last.tzinfo is None:  # a raw aggregate on SQLite
            last = last.replace(tzinfo=UTC)
        sites = sorted(s.scalars(select(VR.site_id).distinct().where(
            VR.card_number == card, VR.outcome == "no_match", VR.captured_at >= since)))
        hits.append(RepeatHit(card, int(n), sites, last))
    return hits


@dataclass
class DeviceQuality:
    device_id: str
    site_id: str
    total: int  # the desk's checks in its window (its most recent, at most poor_window)
    poor: int

    @property
    def rate(self) -> float:
        return self.poor / self.total if self.total else 0.0


# The "desk with many poor presses" rule: each desk's own share over its most recent checks
# (DashboardSettings.poor_window), so a sensor that went bad this morning is not hidden by yesterday's
# clean presses (or by other desks), and a desk with fewer than poor_min_checks is not judged.
def poor_quality_devices(s: Session, since: datetime, ds: DashboardSettings) -> list[DeviceQuality]:
    """Desks whose share of poor presses over their latest `ds.poor_window` checks since `since` is
    at least `ds.poor_quality_rate`, with at least `ds.poor_quality_min` poor presses and
    `ds.poor_min_checks` checks in the window."""
    rows = s.execute(select(VR.device_id, VR.site_id, VR.outcome).where(VR.captured_at >= since)
                     .order_by(VR.device_id, VR.captured_at.desc()))
    recent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for dev, site, outcome in rows:
        if len(recent[dev]) < ds.poor_window:
            recent[dev].append((site, outcome))
    out = [DeviceQuality(dev, seen[0][0], len(seen), sum(o == "poor_quality" for _, o in seen))
           for dev, seen in recent.items()]
    flagged = (d for d in out if d.total >= ds.poor_min_checks and d.poor >= ds.poor_quality_min
               and d.rate >= ds.poor_quality_rate)
    return sorted(flagged, key=lambda d: (-d.rate, -d.poor, d.device_id))
