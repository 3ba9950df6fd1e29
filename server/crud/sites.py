"""Which sites' stations hold which card holders (issue 18): assignments, their expiry, and the
on-demand fetch of one card by a station.

A holder is assigned to a site when enrolled at one of its stations (`enrolled`, for good), admitted
there (`admitted`, while the stay is open; `registered` from the discharge on), seen there
(`registered`: its results renew it, `seen`) or fetched on demand by one of its stations (`fetched`). `registered` and `fetched`
assignments expire `settings.site_assignment_days` after `last_seen` (`expire`). One row a
(holder, site): a stronger reason replaces a weaker one, never the reverse. Each new assignment,
and each change between a kept (`site`) and an evictable (`fetched`) hold, sends the holder to the
site's feed (`feed.send_holder`); an ended one sends `hold` none. Every write is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.crud.errors import Conflict, NotFound
from fpverify.server.ingest import feed
from fpverify.server.models import AssignmentReason, CardHolder, Device, HolderSite, Site, utcnow

R = AssignmentReason
RANK = {R.ENROLLED: 0, R.ADMITTED: 1, R.REGISTERED: 2, R.FETCHED: 3}  # stronger first
EXPIRING = (R.REGISTERED, R.FETCHED)


def held(reason: str) -> str:
    """What the station is told: `fetched` ones its own policy may evict, the others it keeps."""
    return "fetched" if reason == R.FETCHED else "site"


def _key(card_number: str, site_id: str) -> str:
    return f"{card_number}@{site_id}"


def assign(s: Session, actor: str, card_number: str, site_id: str, reason: str,
           now: datetime | None = None) -> HolderSite:
    """Assign (or re-assign, renewing `last_seen`) a holder to a site."""
    reason = R(reason)
    now = now or utcnow()
    if s.get(Site, site_id) is None:
        raise NotFound("no such site")
    row = s.get(HolderSite, (card_number, site_id))
    if row is None:
        row = HolderSite(card_number=card_number, site_id=site_id, reason=reason, since=now, last_seen=now)
        s.add(row)
        s.flush()
        audit.record(s, actor, "holder_site.assign", "holder_site", _key(card_number, site_id), None, row,
                     note=reason.value)
        feed.send_holder(s, card_number, site_id, held(reason))
        return row
    before = audit.snapshot(row)
    was = row.reason
    if RANK[reason] < RANK[R(was)]:
        row.reason = reason
    row.last_seen = max(row.last_seen, now)
    audit.record(s, actor, "holder_site.renew" if row.reason == was else "holder_site.assign", "holder_site",
                 _key(card_number, site_id), before, row, note=f"{was} -> {row.reason}")
    if held(row.reason) != held(was):
        feed.send_holder(s, card_number, site_id, held(row.reason))  # now kept for good: the full set again
    return row


def discharged(s: Session, actor: str, card_number: str, site_id: str, when: datetime) -> None:
    """An inpatient stay ended: the admission becomes a recent registration (it expires from `when`)."""
    row = s.get(HolderSite, (card_number, site_id))
    if row is None or row.reason != R.ADMITTED:
        return
    before = audit.snapshot(row)
    row.reason = R.REGISTERED
    row.last_seen = max(row.last_seen, when)
    audit.record(s, actor, "holder_site.discharge", "holder_site", _key(card_number, site_id), before, row)


def unassign(s: Session, actor: str, card_number: str, site_id: str, note: str) -> None:
    row = s.get(HolderSite, (card_number, site_id))
    if row is None:
        raise NotFound("holder is not assigned to that site")
    before = audit.snapshot(row)
    s.delete(row)
    s.flush()
    audit.record(s, actor, "holder_site.end", "holder_site", _key(card_number, site_id), before, None, note=note)
    feed.append(s, "hold", card_number, status="none", site_id=site_id)


def expire(s: Session, days: float, now: datetime | None = None, site_id: str | None = None,
           limit: int = 10000) -> int:
    """End `registered` and `fetched` assignments not seen for `days` (of one site, or all)."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    q = select(HolderSite.card_number, HolderSite.site_id).where(
        HolderSite.reason.in_(EXPIRING), HolderSite.last_seen < cutoff)
    if site_id is not None:
        q = q.where(HolderSite.site_id == site_id)
    stale = list(s.execute(q.order_by(HolderSite.site_id, HolderSite.card_number).limit(limit)))
    for card_number, site in stale:
        unassign(s, "system", card_number, site, f"not seen for {days:g} days")
    return len(stale)


def seen(s: Session, visits: set[tuple[str, str]], now: datetime | None = None) -> None:
    """Stored results are visits: a holder checked at a site keeps an expiring assignment there
    (`registered` or `fetched`) alive. One statement a batch; the results themselves are the audited
    record (ingest.batch), so this renewal is not audited again."""
    if not visits:
        return
    s.execute(update(HolderSite)
              .where(tuple_(HolderSite.card_number, HolderSite.site_id).in_(sorted(visits)),
                     HolderSite.reason.in_(EXPIRING), HolderSite.last_seen < (now or utcnow()))
              .values(last_seen=now or utcnow()))


def list_for_site(s: Session, site_id: str) -> list[HolderSite]:
    return list(s.scalars(select(HolderSite).where(HolderSite.site_id == site_id).order_by(HolderSite.card_number)))


def fetch_card(s: Session, device: Device, card_number: str) -> wire.CardRecord:
    """A station asks for a card its cache lacks: assign the holder to the station's site (`fetched`,
    or renewed), audit who fetched which card, and return the card as of the feed version that
    follows, so every later change reaches the station through its site's feed."""
    if s.get(CardHolder, card_number) is None:
        raise NotFound("no such card holder")
    if device.site_id is None or s.get(Site, device.site_id) is None:
        raise Conflict("the device has no site")
    feed.lock(s)  # no change below the version read next is still in flight, none above it can slip in
    row = assign(s, f"device:{device.id}", card_number, device.site_id, R.FETCHED)
    version = feed.current_version(s)
    record = feed.card_record(s, card_number, held(row.reason), max(version, 1))
    audit.record(s, f"device:{device.id}", "card.fetch", "card_holder", card_number,
                 note=f"site={device.site_id}; held={record.held}; templates={len(record.templates)}")
    return record
