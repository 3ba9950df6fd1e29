"""Read-only queries of the dashboard (aggregates, filtered lists, suspicion points, the daily report).

Portable between SQLite and PostgreSQL: grouping happens in SQL over UTC ranges computed here from
local days, never with dialect-specific date functions. Writes go through server.crud only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fpverify.server.crud import stays as stays_crud
from fpverify.server.models import (
    Alert,
    CardHolder,
    Consent,
    Delegate,
    Device,
    InpatientStay,
    Site,
    Template,
    VerificationRecord,
)

VR = VerificationRecord
OUTCOMES = ("match", "delegate_match", "no_match", "poor_quality", "not_enrolled", "card_blocked", "sensor_error")
SUCCESS = ("match", "delegate_match")
FAILURES = tuple(o for o in OUTCOMES if o not in SUCCESS)


# ---- time ---------------------------------------------------------------------------------------

def local_midnight(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def day_range(d: date, tz: tzinfo) -> tuple[datetime, datetime]:
    return local_midnight(d, tz), local_midnight(d + timedelta(days=1), tz)


def report_period(d: date, tz: tzinfo, cutoff: time) -> tuple[datetime, datetime]:
    """The 24 h ending at `cutoff` (local) on day `d`: each check is in exactly one daily report."""
    end = datetime.combine(d, cutoff, tzinfo=tz).astimezone(UTC)
    start = datetime.combine(d - timedelta(days=1), cutoff, tzinfo=tz).astimezone(UTC)
    return start, end


def due_report_date(now: datetime, tz: tzinfo, cutoff: time) -> date:
    """The report due next: today's until the cutoff has passed, then tomorrow's."""
    local = now.astimezone(tz)
    return local.date() if local.time() < cutoff else local.date() + timedelta(days=1)


# ---- counts -------------------------------------------------------------------------------------

@dataclass
class Tally:
    key: str
    by_outcome: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())

    @property
    def failures(self) -> int:
        return sum(n for o, n in self.by_outcome.items() if o not in SUCCESS)

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.total if self.total else None


def outcome_counts(s: Session, since: datetime, until: datetime, site_id: str | None = None) -> Counter:
    q = select(VR.outcome, func.count()).where(VR.captured_at >= since, VR.captured_at < until).group_by(VR.outcome)
    if site_id:
        q = q.where(VR.site_id == site_id)
    return Counter(dict(s.execute(q).all()))


def tallies_by(s: Session, column: str, since: datetime, until: datetime) -> list[Tally]:
    """Outcome counts per site_id or device_id in [since, until), busiest first."""
    col = getattr(VR, column)
    rows = s.execute(select(col, VR.outcome, func.count()).where(VR.captured_at >= since, VR.captured_at < until)
                     .group_by(col, VR.outcome))
    out: dict[str, Tally] = {}
    for key, outcome, n in rows:
        out.setdefault(key, Tally(key)).by_outcome[outcome] += n
    return sorted(out.values(), key=lambda t: (-t.total, t.key))


def per_day(s: Session, days: int, today: date, tz: tzinfo) -> list[tuple[date, Counter]]:
    """Outcome counts for each of the last `days` local days (oldest first), one indexed query per day."""
    out = []
    for i in range(days - 1, -1, -1):
        d = today - timedelta(days=i)
        out.append((d, outcome_counts(s, *day_range(d, tz))))
    return out


def total_results(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(VR)) or 0)


# ---- stations -----------------------------------------------------------------------------------

def stations(s: Session) -> list[tuple[Device, Site | None]]:
    rows = s.execute(select(Device, Site).outerjoin(Site, Site.id == Device.site_id).order_by(Device.site_id, Device.id))
    return [(d, site) for d, site in rows]


def site_names(s: Session) -> dict[str, str]:
    return dict(s.execute(select(Site.id, Site.name)).all())


def device_ids(s: Session) -> list[str]:
    return list(s.scalars(select(Device.id).order_by(Device.id)))


def device_names(s: Session) -> dict[str, str]:
    """Device id -> its name (the id where it has none)."""
    return {d: n or d for d, n in s.execute(select(Device.id, Device.name))}


# ---- results list -------------------------------------------------------------------------------

@dataclass
class ResultFilter:
    site_id: str | None = None
    device_id: str | None = None
    outcome: str = "failures"  # "failures", "any" or one outcome
    card_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    purpose: str | None = None

    def apply(self, q):
        if self.site_id:
            q = q.where(VR.site_id == self.site_id)
        if self.device_id:
            q = q.where(VR.device_id == self.device_id)
        if self.outcome == "failures":
            q = q.where(VR.outcome.in_(FAILURES))
        elif self.outcome != "any":
            q = q.where(VR.outcome == self.outcome)
        if self.card_number:
            q = q.where(VR.card_number == self.card_number)
        if self.since:
            q = q.where(VR.captured_at >= self.since)
        if self.until:
            q = q.where(VR.captured_at < self.until)
        if self.purpose:
            q = q.where(VR.purpose == self.purpose)
        return q


def impossible(s: Session, f: ResultFilter) -> list[tuple[str, dict]]:
    """Why `f` cannot match any verification, as (message, values) for the viewer's language."""
    out: list[tuple[str, dict]] = []
    if f.since and f.until and f.since >= f.until:
        out.append(("\"from\" is not before \"until\": no verification can match; swap or clear them", {}))
    if f.card_number and s.get(CardHolder, f.card_number) is None and s.scalar(
            select(VR.result_id).where(VR.card_number == f.card_number).limit(1)) is None:
        like = s.scalar(select(func.count()).select_from(CardHolder)
                        .where(CardHolder.card_number.contains(f.card_number, autoescape=True))) or 0
        if like:
            out.append(("card {card}: no card has this number; {n} card numbers contain it; the filter needs "
                        "the whole number", {"card": f.card_number, "n": like}))
        else:
            out.append(("card {card}: no card has this number; the filter needs the whole number",
                        {"card": f.card_number}))
    return out


def results_page(s: Session, f: ResultFilter, limit: int, offset: int = 0) -> tuple[list[VerificationRecord], int]:
    total = int(s.scalar(f.apply(select(func.count()).select_from(VR))) or 0)
    rows = list(s.scalars(f.apply(select(VR)).order_by(VR.captured_at.desc(), VR.result_id).limit(limit)
                          .offset(offset)))
    return rows, total


def holder_names(s: Session, cards: set[str]) -> dict[str, str]:
    if not cards:
        return {}
    return dict(s.execute(select(CardHolder.card_number, CardHolder.name)
                          .where(CardHolder.card_number.in_(cards))).all())


def delegate_names(s: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(s.execute(select(Delegate.id, Delegate.name).where(Delegate.id.in_(ids))).all())


# ---- card holder ------------------------------------------------------------------------------

@dataclass
class CardView:
    holder: CardHolder
    consents: list[Consent]
    templates: list[Template]
    delegates: list[Delegate]
    history: list[VerificationRecord]
    history_total: int
    alerts: list[Alert]
    stays: list[InpatientStay]


def card_view(s: Session, card_number: str, limit: int = 200) -> CardView | None:
    holder = s.get(CardHolder, card_number)
    if holder is None:
        return None
    history, total = results_page(s, ResultFilter(outcome="any", card_number=card_number), limit)
    return CardView(
        holder=holder,
        consents=list(s.scalars(select(Consent).where(Consent.card_number == card_number).order_by(Consent.id))),
        templates=list(s.scalars(select(Template).where(Template.card_number == card_number)
                                 .order_by(Template.role, Template.finger, Template.enrolled_at))),
        delegates=list(s.scalars(select(Delegate).where(Delegate.card_number == card_number)
                                 .order_by(Delegate.created_at))),
        history=history, history_total=total,
        alerts=list(s.scalars(select(Alert).where(Alert.card_number == card_number).order_by(Alert.raised_at.desc()))),
        stays=list(s.scalars(select(InpatientStay).where(InpatientStay.card_number == card_number)
                             .order_by(InpatientStay.admitted_at.desc()))),
    )


# ---- alerts -------------------------------------------------------------------------------------

def alerts(s: Session, status: str | None, site_id: str | None, limit: int) -> list[Alert]:
    q = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    if status:
        q = q.where(Alert.status == status)
    if site_id:
        q = q.where(Alert.site_id == site_id)
    return list(s.scalars(q))


def alert_counts(s: Session) -> Counter:
    return Counter(dict(s.execute(select(Alert.status, func.count()).group_by(Alert.status)).all()))


def overdue_bedside(s: Session, at: datetime, site_id: str | None = None) -> list[stays_crud.Overdue]:
    """Stays in hospital at `at` whose last bedside match before `at` is older than their interval:
    stays_crud.overdue's rule, evaluated as of any moment (a past report shows that day as it was)."""
    last = (select(func.max(VR.captured_at))
            .where(VR.card_number == InpatientStay.card_number, VR.site_id == InpatientStay.site_id,
                   VR.purpose == "bedside", VR.outcome.in_(stays_crud.BEDSIDE_OK),
                   VR.captured_at >= InpatientStay.admitted_at, VR.captured_at < at)
            .correlate(InpatientStay).scalar_subquery())
    q = select(InpatientStay, last).where(*in_hospital(at))
    if site_id:
        q = q.where(InpatientStay.site_id == site_id)
    found = []
    for stay, checked in s.execute(q):
        checked = checked.replace(tzinfo=UTC) if checked is not None and checked.tzinfo is None else checked
        due = (checked or stay.admitted_at) + timedelta(hours=stay.recheck_interval_hours)
        if due < at:
            found.append(stays_crud.Overdue(stay, checked, due, (at - due).total_seconds() / 3600))
    return sorted(found, key=lambda o: o.due_at)


def in_hospital(at: datetime) -> tuple:
    """Conditions on InpatientStay: admitted before `at` and not discharged by then."""
    return (InpatientStay.admitted_at < at,
            (InpatientStay.discharged_at.is_(None)) | (InpatientStay.discharged_at >= at))


# ---- the daily per-site report --------------------------------------------------------------------

REPORT_COLUMNS = (
    ("site_id", "site"), ("site_name", "site name"), ("verifications", "verifications"),
    *((o, o) for o in OUTCOMES), ("failure_rate", "failure rate"),
    ("bedside_checks", "bedside checks"), ("bedside_confirmed", "bedside confirmed"),
    ("inpatients", "inpatients"), ("overdue", "overdue bedside checks"),
    ("alerts_raised", "alerts raised"), ("cards_retained", "cards retained"),
    ("alerts_resolved", "alerts resolved"), ("alerts_open", "alerts still open"),
)


def daily_report(s: Session, start: datetime, end: datetime, now: datetime) -> list[dict]:
    """One row per site for the period [start, end); inpatients, overdue and open counts are as of
    the period's end (or `now`, for the period still running): a past day shows as it was."""
    as_of = min(end, now)
    names = site_names(s)
    rows: dict[str, dict] = {}

    def row(site: str) -> dict:
        if site not in rows:
            rows[site] = {k: 0 for k, _ in REPORT_COLUMNS} | {"site_id": site, "site_name": names.get(site, site)}
        return rows[site]

    for site in names:
        row(site)
    for tally in tallies_by(s, "site_id", start, end):
        r = row(tally.key)
        r["verifications"] = tally.total
        for o in OUTCOMES:
            r[o] = tally.by_outcome.get(o, 0)
    bedside = s.execute(select(VR.site_id, VR.outcome, func.count())
                        .where(VR.captured_at >= start, VR.captured_at < end, VR.purpose == "bedside")
                        .group_by(VR.site_id, VR.outcome))
    for site, outcome, n in bedside:
        row(site)["bedside_checks"] += n
        if outcome in stays_crud.BEDSIDE_OK:
            row(site)["bedside_confirmed"] += n
    for site, n in s.execute(select(InpatientStay.site_id, func.count()).where(*in_hospital(as_of))
                             .group_by(InpatientStay.site_id)):
        row(site)["inpatients"] = n
    for o in overdue_bedside(s, as_of):
        row(o.stay.site_id)["overdue"] += 1
    for a in s.scalars(select(Alert).where(Alert.raised_at >= start, Alert.raised_at < end)):
        r = row(a.site_id or "-")
        r["alerts_raised"] += 1
        r["cards_retained"] += int(bool(a.card_retained))
    for site, n in s.execute(select(Alert.site_id, func.count()).where(Alert.resolved_at >= start,
                                                                       Alert.resolved_at < end)
                             .group_by(Alert.site_id)):
        row(site or "-")["alerts_resolved"] = n
    still_open = (Alert.raised_at < as_of) & (Alert.resolved_at.is_(None) | (Alert.resolved_at >= as_of))
    for site, n in s.execute(select(Alert.site_id, func.count()).where(still_open).group_by(Alert.site_id)):
        row(site or "-")["alerts_open"] = n
    for r in rows.values():
        r["failure_rate"] = round((r["verifications"] - r["match"] - r["delegate_match"]) / r["verifications"], 4) \
            if r["verifications"] else ""
    return sorted(rows.values(), key=lambda r: r["site_id"])


def report_alerts(s: Session, start: datetime, end: datetime) -> list[Alert]:
    return list(s.scalars(select(Alert).where(Alert.raised_at >= start, Alert.raised_at < end)
                          .order_by(Alert.site_id, Alert.raised_at)))
