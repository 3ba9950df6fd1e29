"""Verification results from stations, the dead-letter table and alerts."""

from __future__ import annotations

import enum
import typing
import uuid
from datetime import datetime

import annotated_types
from pydantic.fields import FieldInfo
from sqlalchemy import (
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
    text,
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
    """A stored edge.wire.VerificationResult (+ received_at); result_id makes ingestion idempotent."""

    __table__ = Table(
        "verification_results", Base.metadata, *_columns(),
        Index("ix_results_site_captured", "site_id", "captured_at"),
        Index("ix_results_card_captured", "card_number", "captured_at"),
        # one stored signed result per device counter, whichever registry process wins (migration 0005)
        Index("uq_results_device_counter", "device_id", "counter", unique=True,
              postgresql_where=text("signature IS NOT NULL"), sqlite_where=text("signature IS NOT NULL")),
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
