"""The result tables (failures page, card history) and the verifications CSV: one list of columns.

Each column names the stored record's field it shows, so the table, the CSV and the record (whose
fields are the wire model's, server/models/results.py) cannot drift apart; _results.html loops
over `result_columns(...)` and the CSV export writes the same keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy.orm import Session

from fpverify.server.dashboard import queries as q
from fpverify.server.models import VerificationRecord


@dataclass(frozen=True)
class ResultColumn:
    """One column of the result tables and of the verifications CSV. `field` names the stored
    record's field it shows (models.results.RECORD_FIELDS, i.e. the wire model's); None for a
    column the dashboard adds (the holder's name)."""

    key: str  # row key and CSV header
    label: str  # table heading
    field: str | None
    personal: bool = False  # shown only to roles that may see personal data


RESULT_COLUMNS = (
    ResultColumn("at", "time", "captured_at"), ResultColumn("site", "site", "site_id"),
    ResultColumn("device", "device", "device_id"), ResultColumn("operator", "operator", "operator_id"),
    ResultColumn("card", "card", "card_number"),
    ResultColumn("name", "holder", None, personal=True), ResultColumn("outcome", "outcome", "outcome"),
    ResultColumn("purpose", "purpose", "purpose"), ResultColumn("score", "score", "score"),
    ResultColumn("threshold", "threshold", "threshold"), ResultColumn("quality", "quality", "quality"),
    ResultColumn("attempts", "attempts", "attempts"), ResultColumn("delegate", "delegate", "delegate_id"),
    ResultColumn("detail", "detail", "detail"),
)


def result_columns(personal: bool) -> list[ResultColumn]:
    return [c for c in RESULT_COLUMNS if personal or not c.personal]


def result_rows(s: Session, records: list[VerificationRecord], personal: bool, card: Callable[[str], str],
                local: Callable[[datetime], str]) -> list[dict]:
    """Display rows of `records` keyed by RESULT_COLUMNS (plus card_url for the card link).
    `card` masks a card number for the viewer; `local` formats a time in the office's zone."""
    names = q.holder_names(s, {r.card_number for r in records}) if personal else {}
    dnames = q.delegate_names(s, {r.delegate_id for r in records if r.delegate_id}) if personal else {}
    rows = []
    for r in records:
        row = {}
        for c in result_columns(personal):
            value = getattr(r, c.field) if c.field else None
            if c.key == "card":
                value = card(r.card_number)
            elif c.key == "name":
                value = names.get(r.card_number, "")
            elif c.key == "delegate":
                value = dnames.get(value or "", value or "") if personal else ("yes" if value else "")
            elif isinstance(value, datetime):
                value = local(value)
            elif isinstance(value, float):
                value = f"{value:.3f}"
            row[c.key] = "" if value is None else value
        row["card_url"] = f"/dashboard/cards/{quote(r.card_number, safe='')}" if personal else None
        rows.append(row)
    return rows
