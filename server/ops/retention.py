"""Retention of verification records: delete what is past the period the regulations require.

The period is `retention.results_months` whole UTC months before the current one (at least 36:
PIPL keeps records of processing 3 years; server/core/config.py). The cutoff is the first day of
the month that many months back: a record is *expired* when it was both captured (station clock)
and received (registry clock) before it. Nothing received or captured after the cutoff is ever
deleted, whatever its id says.

What may not go silently: a record an alert that is not resolved refers to (open or acknowledged:
a case the insurance office is still working on) is kept, and so is its month on PostgreSQL.
Resolved alerts, their notes and suspicion marks are never deleted (they name the card, device
and site themselves); suspicion points are computed over at most 92 days, far inside the period.
The counters of deleted signed results stay in `signed_counters`, so a deleted result replayed is
still refused.

PostgreSQL (partitioned, migration 0008): a month partition entirely before the cutoff whose rows
are all expired and unreferenced is dropped whole (DROP TABLE: no row-by-row delete, no vacuum);
a month holding a kept row is *held*: its other expired rows are deleted, the partition stays.
The DEFAULT partition's expired rows are deleted. SQLite: the expired, unreferenced rows are deleted.

`run(..., dry_run=True)` counts the same and changes nothing. A real run writes one audit row
(`retention.results`: cutoff, rows deleted, months dropped and held, in the note and in the
after-digest) and logs the same, in the transaction that deletes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import and_, delete, func, not_, select, text
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.models import Alert, AlertStatus, VerificationRecord, utcnow
from fpverify.server.models.results import DEFAULT_PARTITION, PARTITION_SCHEMA, month_start
from fpverify.server.ops.partitions import LOCK_TIMEOUT, Month, partitioned, partitions

log = logging.getLogger(__name__)

VR = VerificationRecord
ACTOR = "retention"


def cutoff_for(now: datetime, months: int) -> datetime:
    """The first instant kept: the start of the UTC month `months` before the current one."""
    m = Month.of(now).shift(-months)
    return month_start(m.year, m.month)


@dataclass
class MonthOutcome:
    month: str  # "2023-11", or "default" (the DEFAULT partition), or "rows" (SQLite: the table)
    action: str  # "drop" | "delete" | "hold" (rows deleted, partition kept) | "keep" (nothing to delete)
    deleted: int = 0
    kept_in_period: int = 0  # rows received or captured after the cutoff
    kept_referenced: int = 0  # expired rows an unresolved alert refers to


@dataclass
class Report:
    cutoff: datetime
    months_kept: int
    dry_run: bool
    outcomes: list[MonthOutcome] = field(default_factory=list)

    @property
    def deleted(self) -> int:
        return sum(o.deleted for o in self.outcomes)

    @property
    def dropped(self) -> list[str]:
        return [o.month for o in self.outcomes if o.action == "drop"]

    @property
    def held(self) -> list[MonthOutcome]:
        return [o for o in self.outcomes if o.kept_in_period or o.kept_referenced]

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        parts = [f"{verb} {self.deleted} verification results captured and received before "
                 f"{self.cutoff:%Y-%m-%d} (retention {self.months_kept} months)"]
        if self.dropped:
            parts.append(f"partitions {'to drop' if self.dry_run else 'dropped'}: {_ranges(self.dropped)}")
        deleted_rows = [o.month for o in self.outcomes if o.action in ("delete", "hold") and o.deleted]
        if deleted_rows:
            parts.append(f"rows deleted in: {_ranges(deleted_rows)}")
        for o in self.held:
            why = []
            if o.kept_referenced:
                why.append(f"{o.kept_referenced} referenced by unresolved alerts")
            if o.kept_in_period:
                why.append(f"{o.kept_in_period} received or captured inside the period")
            where = {"rows": "kept", "default": "kept in the DEFAULT partition"}.get(o.month, f"kept in {o.month}")
            parts.append(f"{where}: {', '.join(why)}")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"cutoff": self.cutoff.isoformat(), "months_kept": self.months_kept, "deleted": self.deleted,
                "outcomes": [asdict(o) for o in self.outcomes]}


def _ranges(months: list[str]) -> str:
    """'2020-01..2020-05, 2021-03' for a sorted list of months (other labels as they are)."""
    out: list[list[str]] = []
    for m in months:
        if out and _follows(out[-1][-1], m):
            out[-1].append(m)
        else:
            out.append([m])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in out)


def _follows(a: str, b: str) -> bool:
    try:
        ya, ma = map(int, a.split("-"))
        yb, mb = map(int, b.split("-"))
    except ValueError:
        return False
    return Month(ya, ma).shift(1) == Month(yb, mb)


def _expired(cutoff: datetime, table=VR.__table__):
    return and_(table.c.received_at < cutoff, table.c.captured_at < cutoff)


def _referenced(table=VR.__table__):
    """Referred to by an alert that is not resolved."""
    return table.c.result_id.in_(select(Alert.result_id).where(
        Alert.result_id.is_not(None), Alert.status != AlertStatus.RESOLVED))


def _part(name: str):
    """verification_results' columns under a partition's name (a Table in the partitions' schema)."""
    from sqlalchemy import MetaData, Table

    return Table(name, MetaData(), *(c._copy() for c in VR.__table__.columns), schema=PARTITION_SCHEMA)


def _count(s: Session, table, cutoff: datetime) -> tuple[int, int, int]:
    """(rows, rows kept for the period, expired rows kept for an unresolved alert) of a table."""
    exp, ref = _expired(cutoff, table), _referenced(table)
    total, in_period, referenced = s.execute(select(
        func.count(), func.count().filter(not_(exp)), func.count().filter(and_(exp, ref))).select_from(table)).one()
    return int(total), int(in_period), int(referenced)


def _delete_rows(s: Session, table, cutoff: datetime, dry_run: bool, expired_free: int) -> int:
    if dry_run or not expired_free:
        return expired_free
    return s.execute(delete(table).where(_expired(cutoff, table), not_(_referenced(table)))).rowcount


def _partitioned_run(s: Session, cutoff: datetime, dry_run: bool) -> list[MonthOutcome]:
    months, has_default = partitions(s)
    last = Month.of(cutoff).shift(-1)  # the newest month entirely before the cutoff
    out = []
    if not dry_run:
        s.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    for month in (m for m in months if m <= last):
        table = _part(month.table.split(".", 1)[1])
        if not dry_run:  # no insert may slip into the month between counting and dropping
            s.execute(text(f"LOCK TABLE {month.table} IN SHARE ROW EXCLUSIVE MODE"))
        total, in_period, referenced = _count(s, table, cutoff)
        free = total - in_period - referenced
        if not in_period and not referenced:
            if not dry_run:
                s.execute(text(f"DROP TABLE {month.table}"))
            out.append(MonthOutcome(str(month), "drop", free))
        else:
            deleted = _delete_rows(s, table, cutoff, dry_run, free)
            out.append(MonthOutcome(str(month), "hold", deleted, in_period, referenced))
    if has_default:
        table = _part(DEFAULT_PARTITION)
        total, in_period, referenced = _count(s, table, cutoff)
        free = total - in_period - referenced
        deleted = _delete_rows(s, table, cutoff, dry_run, free)
        out.append(MonthOutcome("default", "delete" if deleted else "keep", deleted, 0, referenced))
    return out


def _plain_run(s: Session, cutoff: datetime, dry_run: bool) -> list[MonthOutcome]:
    """SQLite (or an unpartitioned table): delete the expired rows that no unresolved alert refers to."""
    table = VR.__table__
    total, in_period, referenced = _count(s, table, cutoff)
    free = total - in_period - referenced
    deleted = _delete_rows(s, table, cutoff, dry_run, free)
    return [MonthOutcome("rows", "delete" if deleted else "keep", deleted, 0, referenced)]


def run(s: Session, months: int, now: datetime | None = None, dry_run: bool = False) -> Report:
    """Apply (or with dry_run only count) the retention of `months` months. Commits a real run with
    its audit row; a dry run is rolled back and leaves no trace but the log."""
    now = now or utcnow()
    cutoff = cutoff_for(now, months)
    report = Report(cutoff, months, dry_run)
    try:
        report.outcomes = (_partitioned_run if partitioned(s) else _plain_run)(s, cutoff, dry_run)
        if dry_run:
            s.rollback()
        else:
            audit.record(s, ACTOR, "retention.results", "verification_results", f"before {cutoff:%Y-%m-%d}",
                         None, report.as_dict(), note=report.summary()[:500])
            s.commit()
    except Exception:
        s.rollback()
        raise
    log.info("retention: %s", report.summary())
    return report
