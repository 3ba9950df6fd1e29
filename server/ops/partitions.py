"""Monthly partitions of verification_results on PostgreSQL (migration 0008; models/results.py).

The table is partitioned by RANGE (result_id): a UUIDv7 starts with its creation time, so a month
of ids is one range. A DEFAULT partition takes every id no month holds (a month not made yet, a
station clock years off, an id that is no UUIDv7), so an insert never fails for want of a
partition. `ensure_months` makes the current month and the next ones ahead; an id of that month
already in the DEFAULT partition is moved into the new month in the same transaction (PostgreSQL
refuses to attach a range the DEFAULT partition holds rows of). SQLite has no partitions: every
function here is a no-op there and `partitioned` says False.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from fpverify.server.models.results import (
    DEFAULT_PARTITION,
    PARTITION_SCHEMA,
    add_months,
    month_bounds,
    partition_name,
)

log = logging.getLogger(__name__)

NAME = re.compile(r"results_(\d{4})_(\d{2})")
LOCK_TIMEOUT = "10s"  # maintenance waits this long for ingest's locks, then fails (the timer retries)


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def table(self) -> str:
        return f"{PARTITION_SCHEMA}.{partition_name(self.year, self.month)}"

    def shift(self, n: int) -> Month:
        return Month(*add_months(self.year, self.month, n))

    @classmethod
    def of(cls, at: datetime) -> Month:
        return cls(at.year, at.month)


def partitioned(s: Session) -> bool:
    """verification_results is a partitioned table here (PostgreSQL after migration 0008)."""
    if s.get_bind().dialect.name != "postgresql":
        return False
    return bool(s.scalar(text(
        "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'verification_results' AND c.relnamespace = current_schema()::regnamespace")))


def partitions(s: Session) -> tuple[list[Month], bool]:
    """The month partitions attached to verification_results (sorted) and whether the DEFAULT one is there."""
    rows = s.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'verification_results' "
        "AND p.relnamespace = current_schema()::regnamespace")).scalars().all()
    months = sorted(Month(int(m[1]), int(m[2])) for name in rows if (m := NAME.fullmatch(name)))
    other = [n for n in rows if not NAME.fullmatch(n) and n != DEFAULT_PARTITION]
    if other:
        log.warning("partitions of verification_results not made by fpverify, left alone: %s", ", ".join(other))
    return months, DEFAULT_PARTITION in rows


def ensure_months(s: Session, now: datetime, ahead: int) -> list[Month]:
    """Create the partitions of the current month and `ahead` months after it that are missing
    (and the DEFAULT one if it is gone); returns the months created. The caller commits."""
    if not partitioned(s):
        return []
    have, has_default = partitions(s)
    s.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    if not has_default:
        s.execute(text(f"CREATE TABLE {PARTITION_SCHEMA}.{DEFAULT_PARTITION} PARTITION OF verification_results DEFAULT"))
        log.warning("verification_results had no DEFAULT partition: created it")
    made = []
    first = Month.of(now)
    for k in range(ahead + 1):
        month = first.shift(k)
        if month not in have:
            moved = create_month(s, month)
            made.append(month)
            log.info("partition %s created for %s (%d results moved from the DEFAULT partition)", month.table,
                     month, moved)
    return made


def create_month(s: Session, month: Month) -> int:
    """Create and attach the partition of `month`, moving its ids out of the DEFAULT partition first.
    Returns how many rows moved. The DEFAULT partition is locked meanwhile (inserts of ids no month
    holds wait a moment); the new table gets the parent's indexes and trigger when attached."""
    lo, hi = month_bounds(month.year, month.month)
    default = f"{PARTITION_SCHEMA}.{DEFAULT_PARTITION}"
    s.execute(text(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))
    s.execute(text(f"CREATE TABLE {month.table} (LIKE verification_results INCLUDING DEFAULTS)"))
    bounds = {"lo": lo, "hi": hi}
    moved = s.execute(text(
        f"WITH moved AS (DELETE FROM {default} WHERE result_id >= :lo AND result_id < :hi RETURNING *) "
        f"INSERT INTO {month.table} SELECT * FROM moved"), bounds).rowcount
    s.execute(text(f"ALTER TABLE verification_results ATTACH PARTITION {month.table} "
                   f"FOR VALUES FROM ('{lo}') TO ('{hi}')"))
    return moved
