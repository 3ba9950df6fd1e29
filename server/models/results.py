"""Verification results from stations, the dead-letter table and alerts."""

from __future__ import annotations

import enum
import typing
import uuid
from datetime import UTC, datetime

import annotated_types
from pydantic.fields import FieldInfo
from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Uuid,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.edge import wire
from fpverify.server.models.base import Base, UTCDateTime, utcnow

# ---- the verification record: columns derived from the wire model ---------------------------------
# edge.wire.VerificationResult is the one definition of a record; this table, the ingest rows
# (`record_row`), the API schema (server/schemas.py ResultOut) and the dashboard's columns
# (server/dashboard/result_table.py RESULT_COLUMNS) all follow its fields. Only `received_at` is the
# registry's own. A new wire field becomes a new column here: add a migration for it.
ENUM_LENGTH = 20  # outcome / purpose values are stored as their string value
INDEXED = frozenset({"device_id", "outcome", "captured_at"})
RECORD_FIELDS: tuple[str, ...] = tuple(n for n in wire.VerificationResult.model_fields
                                       if n not in wire.ENVELOPE_FIELDS)


def _max_length(info: FieldInfo) -> int | None:
    return next((m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)), None)


def _bounded(info: FieldInfo) -> bool:
    return any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in info.metadata)


def plain_type(info: FieldInfo) -> type:
    """The field's Python type without None and without its constraints (str, int, Outcome...)."""
    args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    py = args[0] if args else info.annotation
    return typing.get_args(py)[0] if typing.get_origin(py) is typing.Annotated else py


def nullable(info: FieldInfo) -> bool:
    return type(None) in typing.get_args(info.annotation)


def _sql_type(name: str, info: FieldInfo):
    py = plain_type(info)
    if py is uuid.UUID:
        return Uuid()
    if py is datetime:
        return UTCDateTime()
    if isinstance(py, type) and issubclass(py, enum.Enum):
        return String(ENUM_LENGTH)
    if py is str:
        length = _max_length(info)
        if length is None:
            raise TypeError(f"wire field {name!r} needs a max_length to become a column")
        return String(length)
    if py is bool:
        return Boolean()
    if py is int:
        return Integer() if _bounded(info) else BigInteger()  # e.g. the signing counter
    if py is float:
        return Float()
    raise TypeError(f"no column type for wire field {name!r} ({py!r})")  # pragma: no cover


def _columns() -> list[Column]:
    cols = []
    for name in RECORD_FIELDS:
        info = wire.VerificationResult.model_fields[name]
        default = None if info.is_required() or info.default is None else info.default
        cols.append(Column(name, _sql_type(name, info), primary_key=name == "result_id", nullable=nullable(info),
                           index=name in INDEXED or None, default=default))
    cols.append(Column("received_at", UTCDateTime(), nullable=False, default=utcnow))
    return cols


class VerificationRecord(Base):
    """A stored edge.wire.VerificationResult (+ received_at); result_id makes ingestion idempotent.

    On PostgreSQL the table is partitioned by month (migration 0008) as RANGE of result_id itself:
    a UUIDv7 begins with its creation time in milliseconds, so the ids of one month are one range
    (`month_bounds`). The partition key is the primary key: a result id has exactly one partition,
    so the plain primary key stays globally unique and a redelivery meets its first copy. Ids that
    fall in no month created yet (a month not made ahead, a station clock years off, a non-v7 id) go
    to the DEFAULT partition; `server.ops.partitions` creates months ahead and moves such rows.
    SQLite keeps one plain table."""

    __table__ = Table(
        "verification_results", Base.metadata, *_columns(),
        Index("ix_results_site_captured", "site_id", "captured_at"),
        Index("ix_results_card_captured", "card_number", "captured_at"),
        postgresql_partition_by="RANGE (result_id)",
    )
    if typing.TYPE_CHECKING:  # the columns are generated; name the ones code reads for type checkers
        result_id: Mapped[uuid.UUID]
        device_id: Mapped[str]
        site_id: Mapped[str]
        card_number: Mapped[str]
        outcome: Mapped[str]
        purpose: Mapped[str]
        captured_at: Mapped[datetime]
        received_at: Mapped[datetime]


class SignedCounter(Base):
    """The replay guard: one row per (device, counter) of every signed result ever stored, kept when
    retention deletes the result. It replaces migration 0005's unique index on the results, which a
    table partitioned by result_id cannot hold. The ingest writer claims a counter here before it
    inserts the result; the trigger below claims it for any other insert, so no path stores two
    signed results with one counter, and a counter of a deleted result is still known as used."""

    __tablename__ = "signed_counters"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    result_id: Mapped[uuid.UUID] = mapped_column(Uuid)


# ---- monthly partitions (PostgreSQL) -----------------------------------------------------------------
PARTITION_SCHEMA = "result_partitions"  # out of the public schema: the app's tables stay as the models say
DEFAULT_PARTITION = "results_default"


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    k = year * 12 + month - 1 + n
    return k // 12, k % 12 + 1


def time_bound(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 created at `at` (its first 48 bits: Unix time in milliseconds)."""
    ms = max(0, int(at.timestamp() * 1000))
    return uuid.UUID(int=min(ms, (1 << 48) - 1) << 80)


def month_bounds(year: int, month: int) -> tuple[uuid.UUID, uuid.UUID]:
    """[low, high) of the result ids of a month (UTC)."""
    return time_bound(month_start(year, month)), time_bound(month_start(*add_months(year, month, 1)))


def partition_name(year: int, month: int) -> str:
    return f"results_{year:04d}_{month:02d}"


_PG_SETUP = (DDL(f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}"),
             DDL(f"CREATE TABLE IF NOT EXISTS {PARTITION_SCHEMA}.{DEFAULT_PARTITION} PARTITION OF verification_results "
                 "DEFAULT"))
# Claim the counters of the signed rows an INSERT stored: the writer claimed them already (same result:
# nothing to do); one another result holds makes the primary key refuse the INSERT, as 0005's unique
# index did. PostgreSQL: once per statement over its transition table (set-based; a trigger on the
# partitioned table covers every partition, also those attached later); SQLite: per row.
PG_CLAIM_FUNCTION = """
CREATE OR REPLACE FUNCTION claim_signed_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO signed_counters (device_id, counter, result_id)
    SELECT n.device_id, n.counter, n.result_id FROM inserted n
    WHERE n.signature IS NOT NULL AND n.counter IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM signed_counters c WHERE c.device_id = n.device_id AND c.counter = n.counter
        AND c.result_id = n.result_id);
  RETURN NULL;
END $$"""
PG_CLAIM_TRIGGER = ("CREATE TRIGGER trg_results_signed_counter AFTER INSERT ON verification_results "
                    "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION claim_signed_counters()")
SQLITE_CLAIM_TRIGGER = """
CREATE TRIGGER trg_results_signed_counter AFTER INSERT ON verification_results
FOR EACH ROW WHEN NEW.signature IS NOT NULL AND NEW.counter IS NOT NULL
BEGIN
  INSERT OR IGNORE INTO signed_counters (device_id, counter, result_id) VALUES (NEW.device_id, NEW.counter, NEW.result_id);
  SELECT RAISE(ABORT, 'counter of this device is stored for another result') WHERE NOT EXISTS (
    SELECT 1 FROM signed_counters WHERE device_id = NEW.device_id AND counter = NEW.counter AND result_id = NEW.result_id);
END"""


@event.listens_for(Base.metadata, "after_create")
def _after_create(target, connection, tables=(), **_kw) -> None:
    """create_all (tests, the demo) builds what migration 0008 builds: the DEFAULT partition and the trigger."""
    names = {t.name for t in tables}
    if "verification_results" not in names:
        return
    if connection.dialect.name == "postgresql":
        for ddl in _PG_SETUP:
            connection.execute(ddl)
        connection.exec_driver_sql(PG_CLAIM_FUNCTION)
        connection.exec_driver_sql(PG_CLAIM_TRIGGER)
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql(SQLITE_CLAIM_TRIGGER)


_ENUM_FIELDS = frozenset(n for n in RECORD_FIELDS
                         if isinstance(plain_type(wire.VerificationResult.model_fields[n]), enum.EnumType))


def record_row(result: wire.VerificationResult, received_at: datetime) -> dict:
    """The table row of a validated result (enum members as their values). Hot path of the ingest."""
    values = result.__dict__
    row = {name: values[name] for name in RECORD_FIELDS}
    for name in _ENUM_FIELDS:
        row[name] = row[name].value
    row["received_at"] = received_at
    return row


class DeadLetter(Base):
    """A message the ingest worker could not accept, with the reason and the (truncated) payload."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(1000))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(Base):
    """Raised for the insurance office, e.g. a no_match where the desk retained the card."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "no_match", later e.g. "bad_signature"
    result_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, unique=True)
    card_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_retained: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    comment: Mapped[str | None] = mapped_column(String(2000), nullable=True)
