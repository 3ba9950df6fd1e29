"""The station's clerks: the staff list in the encrypted store, and its sync from the registry.

The list (operator id, active/frozen, PIN hash, finger templates) lives in its own tables of the
SQLCipher file, apart from the patients' templates: `Store.templates_for` never returns a clerk's
template, and sign-in (edge/kiosk/shift.py) never reads a patient's. It is replaced whole by each
staff feed (`GET /api/v1/devices/{id}/staff`, a snapshot), pulled every `shift.staff_sync_s` and at
once on the registry's TemplatesChanged notification (a freeze publishes one). A feed for another
site, older than the list held, or with a template the matcher cannot read changes nothing.
Failed PIN attempts are kept here too, so a restart does not reset the wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from fpverify.edge.cache import Store
from fpverify.edge.config import RegistrySection
from fpverify.edge.sync import RegistryPull, SyncError, matcher_template_check
from fpverify.edge.wire import StaffFeed

log = logging.getLogger("fpverify.edge.staff")

TABLES = """
CREATE TABLE IF NOT EXISTS staff (
    operator_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'frozen')),
    pin_hash TEXT
);
CREATE TABLE IF NOT EXISTS staff_templates (
    template_id TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL,
    finger INTEGER NOT NULL,
    quality INTEGER NOT NULL,
    template BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_pin (
    operator_id TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    not_before TEXT
)
"""


@dataclass(frozen=True)
class Member:
    operator_id: str
    status: str
    pin_hash: str | None


@dataclass(frozen=True)
class StaffTemplate:
    """A clerk's template as the matcher engine sees it (template_id and template bytes)."""

    template_id: str
    operator_id: str
    finger: int
    template: bytes


class StaffStore:
    """The staff tables of the station's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_tables(TABLES)

    def apply(self, feed: StaffFeed, site_id: str) -> set[str]:
        """Replace the list with `feed` atomically; returns the operators no longer active."""
        if feed.site_id != site_id:
            raise SyncError(f"staff feed is for site {feed.site_id!r}, this station is at {site_id!r}")
        with self.store.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'staff_generated_at'").fetchone()
            if row and datetime.fromisoformat(row[0]) > feed.generated_at:
                raise SyncError(f"staff feed of {feed.generated_at.isoformat()} is older than the list held "
                                f"({row[0]}): replayed or from a clock gone back; nothing applied")
            before = {r[0] for r in db.execute("SELECT operator_id FROM staff WHERE status = 'active'")}
            old_pins = dict(db.execute("SELECT operator_id, pin_hash FROM staff").fetchall())
            db.execute("DELETE FROM staff_templates")
            db.execute("DELETE FROM staff")
            for m in feed.staff:
                db.execute("INSERT INTO staff VALUES (?, ?, ?)", (m.operator_id, m.status, m.pin_hash))
                for t in m.templates:
                    db.execute("INSERT INTO staff_templates VALUES (?, ?, ?, ?, ?)",
                               (t.template_id, m.operator_id, t.finger, t.quality, t.template))
                if m.pin_hash != old_pins.get(m.operator_id):  # a new PIN starts with a clean slate
                    db.execute("DELETE FROM staff_pin WHERE operator_id = ?", (m.operator_id,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('staff_generated_at', ?)", (feed.generated_at.isoformat(),))
        after = {m.operator_id for m in feed.staff if m.status == "active"}
        return before - after

    def member(self, operator_id: str) -> Member | None:
        rows = self.store.query("SELECT operator_id, status, pin_hash FROM staff WHERE operator_id = ?", (operator_id,))
        return Member(*rows[0]) if rows else None

    def templates(self) -> list[StaffTemplate]:
        """Templates of active clerks only."""
        rows = self.store.query(
            "SELECT t.template_id, t.operator_id, t.finger, t.template FROM staff_templates t "
            "JOIN staff s ON s.operator_id = t.operator_id WHERE s.status = 'active' ORDER BY t.template_id")
        return [StaffTemplate(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def counts(self) -> dict[str, int]:
        return {"clerks": self.store.query("SELECT count(*) FROM staff WHERE status = 'active'")[0][0],
                "frozen": self.store.query("SELECT count(*) FROM staff WHERE status = 'frozen'")[0][0]}

    # -- failed PIN attempts -------------------------------------------------------------------
    def pin_failures(self, operator_id: str) -> tuple[int, datetime | None]:
        rows = self.store.query("SELECT failures, not_before FROM staff_pin WHERE operator_id = ?", (operator_id,))
        if not rows:
            return 0, None
        return rows[0][0], datetime.fromisoformat(rows[0][1]) if rows[0][1] else None

    def set_pin_failures(self, operator_id: str, failures: int, not_before: datetime | None) -> None:
        with self.store.transaction() as db:
            if failures == 0:
                db.execute("DELETE FROM staff_pin WHERE operator_id = ?", (operator_id,))
            else:
                db.execute("INSERT OR REPLACE INTO staff_pin VALUES (?, ?, ?)",
                           (operator_id, failures, not_before.isoformat() if not_before else None))


class StaffSync(RegistryPull):
    """Pulls the staff feed now and then, and at once on `notify` (any registry notification)."""

    label = "staff sync"

    def __init__(self, cfg: RegistrySection, device_id: str, site_id: str, staff: StaffStore, token: str,
                 interval_s: float = 300.0, on_applied: Callable[[set[str]], None] | None = None,
                 template_check: Callable[[bytes], None] | None = matcher_template_check,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(cfg, token, interval_s, transport)
        self.device_id, self.site_id, self.staff = device_id, site_id, staff
        self.on_applied = on_applied
        self.template_check = template_check
        self.synced = threading.Event()  # set after each successful pull (tests wait on it)

    def fetch(self) -> StaffFeed:
        feed = self._get(f"/api/v1/devices/{self.device_id}/staff", StaffFeed, "staff list")
        for m in feed.staff:
            for t in m.templates:
                try:
                    if self.template_check:
                        self.template_check(t.template)
                except (ValueError, TypeError) as exc:
                    raise SyncError(f"staff template {t.template_id} is not a valid template: {exc}; "
                                    f"nothing applied") from exc
        return feed

    def sync_once(self) -> set[str]:
        with self._lock:
            ended = self.staff.apply(self.fetch(), self.site_id)
        self.last_error = None
        if ended:
            log.info("staff list: no longer active here: %s", ", ".join(sorted(ended)))
        if self.on_applied:
            self.on_applied(ended)
        self.synced.set()
        return ended

    def notify(self, _note=None) -> None:
        self._trigger.set()
