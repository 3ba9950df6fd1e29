"""Cards fetched on demand (issue 18): a station holds its site's cards (the feed keeps them) and
fetches any other card from the registry when one is presented, keeps it, and evicts it by the
site's policy (`[registry.fetch]`: unused for `idle_days`, or least recently used beyond
`max_cards`). Only cards the registry marked `fetched` are evicted here; the feed's own end of an
assignment (`hold` none) drops any card. These functions work on the station's Store (edge/cache.py),
in its transactions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fpverify.edge.cache import INSERT_TEMPLATE, CacheError, Store, template_row
from fpverify.edge.wire import CardRecord

log = logging.getLogger("fpverify.edge.fetched")

# The clerk's words for a card this station does not hold and cannot fetch now.
NOT_HERE = "not enrolled here / 本站未登记"
# The registry answered that it has no such holder: not enrolled anywhere (the patient may enroll).
UNKNOWN_AT_REGISTRY = "the registry has no such card holder"


def not_here(detail: str | None) -> bool:
    """A not_enrolled result's detail says the card was not checked here (not: enrolled nowhere)."""
    return (detail or "").startswith(NOT_HERE)


class StaleRecord(CacheError):
    """A fetched card is older than what the cache has applied since: fetch it again."""


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")  # sorts as it reads


def ensure(store: Store, card_number: str) -> str | None:
    """Before a check: a card the cache knows is marked used; one it lacks is asked of the registry.
    None when the card is (now) in the cache; otherwise why not, for the clerk and the record."""
    if store.has_card(card_number):
        note_use(store, card_number)
        return None
    if store.fetcher is None:
        return "this station has no registry to fetch from"
    try:
        why = store.fetcher(card_number)
    except Exception as exc:  # the desk goes on (not enrolled here); the cause goes to the log
        log.exception("fetching a card failed")
        why = f"fetch failed: {exc}"
    return None if why is None else why[:300]


def note_use(store: Store, card_number: str, now: datetime | None = None) -> None:
    """A fetched card was used at the desk: it goes to the back of the eviction queue. (A read
    first: the site's own cards, most checks, cost no write.)"""
    if held(store, card_number) != "fetched":
        return
    with store.transaction() as db:
        db.execute("UPDATE holds SET last_used = ? WHERE card_number = ? AND held = 'fetched'",
                   (_iso(now or datetime.now(UTC)), card_number))


def held(store: Store, card_number: str) -> str | None:
    """'site', 'fetched', 'evicted' (dropped here by the policy) or None (no hold row: kept)."""
    rows = store.query("SELECT held, evicted_at FROM holds WHERE card_number = ?", (card_number,))
    if not rows:
        return None
    return "evicted" if rows[0][1] else rows[0][0]


def store_card(store: Store, record: CardRecord, now: datetime | None = None) -> None:
    """Store one card fetched on demand (edge/sync.py checked its templates), replacing what the
    cache had of it. Refused (StaleRecord) when the cache applied feed changes after the record's
    version: those could be about this card, so the caller fetches again."""
    card = record.card_number
    if any(t.card_number != card for t in record.templates):
        raise CacheError(f"card record for {card} holds a template of another card")
    with store.transaction() as db:
        current = int((db.execute("SELECT value FROM meta WHERE key = 'feed_version'").fetchone() or ("0",))[0])
        if current > record.version:
            raise StaleRecord(f"card record at version {record.version}, cache already at {current}")
        db.execute("DELETE FROM templates WHERE card_number = ?", (card,))
        for t in record.templates:
            db.execute(INSERT_TEMPLATE, template_row(t))
        db.execute("INSERT OR REPLACE INTO cards VALUES (?, ?, ?)", (card, record.status, record.version))
        db.execute("INSERT INTO holds VALUES (?, ?, ?, NULL) ON CONFLICT (card_number) DO UPDATE SET "
                   "held = excluded.held, last_used = excluded.last_used, evicted_at = NULL",
                   (card, record.held, _iso(now or datetime.now(UTC))))


def evict(store: Store, max_cards: int, idle_days: float, now: datetime | None = None) -> int:
    """The site's policy on fetched cards: drop those unused for `idle_days`, then the least
    recently used beyond `max_cards`. Returns how many were dropped."""
    now = now or datetime.now(UTC)
    cutoff = _iso(now - timedelta(days=idle_days))
    live = "held = 'fetched' AND evicted_at IS NULL"
    with store.transaction() as db:
        idle = [r[0] for r in db.execute(f"SELECT card_number FROM holds WHERE {live} AND last_used < ?", (cutoff,))]
        over = [r[0] for r in db.execute(
            f"SELECT card_number FROM holds WHERE {live} AND last_used >= ? "
            "ORDER BY last_used DESC, card_number LIMIT -1 OFFSET ?", (cutoff, max_cards))]
        for card in idle + over:
            db.execute("DELETE FROM templates WHERE card_number = ?", (card,))
            db.execute("DELETE FROM cards WHERE card_number = ?", (card,))
            db.execute("UPDATE holds SET evicted_at = ? WHERE card_number = ?", (_iso(now), card))
    if idle or over:
        log.info("evicted %d fetched cards (%d idle, %d beyond %d)", len(idle) + len(over), len(idle), len(over),
                 max_cards)
    return len(idle) + len(over)
