"""Per-site incremental template feed (edge.wire.TemplateFeed) and its MQTT change notification.

Every change a station must apply (template added, template revoked, card blocked/unblocked, the
site's hold on a card) is a FeedChange row whose version comes from the 'feed' counter; bumping it
with UPDATE .. RETURNING locks the counter row until commit, so versions become visible in order
and a station that has seen version V never misses a change below V. Template bytes are not
copied into the log: an 'add' whose template was purged later (consent withdrawn) is skipped, the
later 'revoke' follows.

Per site (issue 18): a change about a holder is appended once with site_id None (the registry's
own log: the duplicate index and history read it; no station ever gets it) and once for each site
the holder is assigned to (server/crud/sites.py). A new assignment appends, for that site, a
`hold` (site or fetched) and the holder's active templates and card status; the end of one a
`hold` none, after which the station drops the card. A device reads only its own site's rows, and
of those only about holders assigned to its site now (a row about a card assigned no longer has a
`hold` none after it, so skipping it changes nothing the station ends with). A template whose
cohort statistics were (re)computed later is sent again as an `add` to the sites holding it (`resend`).

After a commit that appended changes, `TemplatesChanged(version)` is published retained on each
device's templates topic (server/ingest/notifier.py; the Database calls it from an after_commit hook).
The sites a commit touched are in `session.info["feed_sites"]` (None: the registry's log only).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server.models import (
    CardHolder,
    Counter,
    Delegate,
    Device,
    FeedChange,
    HolderSite,
    Template,
    TemplateStatus,
    utcnow,
)


def current_version(s: Session) -> int:
    return int(s.scalar(select(Counter.value).where(Counter.name == "feed")) or 0)


def append(s: Session, op: str, card_number: str, template_id: str | None = None, status: str | None = None,
           site_id: str | None = None) -> int:
    """Append one change and return its version. Marks the session so a notification follows commit."""
    version = s.execute(
        update(Counter).where(Counter.name == "feed").values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one()
    s.add(FeedChange(version=version, op=op, card_number=card_number, template_id=template_id, status=status,
                     site_id=site_id, at=utcnow()))
    s.info["feed_version"] = version
    s.info.setdefault("feed_sites", set()).add(site_id)
    return version


def lock(s: Session) -> int:
    """Take the feed counter's row lock (held to commit) and return the version: what this session
    reads afterwards is the state as of that version, no change below it still in flight."""
    return int(s.scalar(select(Counter.value).where(Counter.name == "feed").with_for_update()) or 0)


def sites_of(s: Session, card_number: str) -> list[str]:
    return list(s.scalars(select(HolderSite.site_id).where(HolderSite.card_number == card_number)
                          .order_by(HolderSite.site_id)))


def append_holder(s: Session, op: str, card_number: str, template_id: str | None = None,
                  status: str | None = None) -> int:
    """A change about a holder: once to the registry's log, once for each site the holder is assigned to."""
    version = append(s, op, card_number, template_id=template_id, status=status)
    for site_id in sites_of(s, card_number):
        version = append(s, op, card_number, template_id=template_id, status=status, site_id=site_id)
    return version


def resend(s: Session, card_number: str, template_ids: list[str]) -> int:
    """Templates whose stored fields changed but not their bytes (their cohort statistics, server/ops/
    cohort_backfill.py): an `add` again for each site holding the card, whose stations replace the
    cached row (build_feed sends the template as it is now). Not to the registry's own log: the
    duplicate index reads only the bytes. Returns the entries appended."""
    sites = sites_of(s, card_number)
    for site_id in sites:
        for tid in template_ids:
            append(s, "add", card_number, template_id=tid, site_id=site_id)
    return len(sites) * len(template_ids)


def send_holder(s: Session, card_number: str, site_id: str, held: str) -> int:
    """The site's stations start (or change) holding a card: the hold, then its active templates
    (holder's and delegates') and its status, for that site only."""
    append(s, "hold", card_number, status=held, site_id=site_id)
    for tid in s.scalars(select(Template.id).where(Template.card_number == card_number,
                                                   Template.status == TemplateStatus.ACTIVE,
                                                   Template.data.is_not(None)).order_by(Template.id)):
        append(s, "add", card_number, template_id=tid, site_id=site_id)
    status = s.scalar(select(CardHolder.status).where(CardHolder.card_number == card_number))
    return append(s, "card", card_number, status=status, site_id=site_id)


def notify_stations(s: Session) -> None:
    """A change the stations' staff list follows (a credential, a freeze, a role): have the notifier
    publish TemplatesChanged after the commit (Database's after_commit hook); stations pull both feeds."""
    if "feed_version" not in s.info:
        s.info["feed_version"] = current_version(s)


def note_pull(device: Device, since: int) -> None:
    """A pull says which version the station's cache holds (`since`): keep it as its live cache
    version (DeviceStatus reports it only at connect). Telemetry, like presence: not audited."""
    device.cache_version = since
    device.last_seen = max(filter(None, [device.last_seen, utcnow()]))


def build_feed(s: Session, device: Device, since: int, limit: int) -> wire.TemplateFeed:
    """Changes after `since` for the device's site, in version order, at most `limit`."""
    # Read the counter before the rows: a change committing in between then shows up next time.
    committed = current_version(s)
    rows = list(s.scalars(
        select(FeedChange)
        .where(FeedChange.site_id == device.site_id, FeedChange.version > since)
        .order_by(FeedChange.version)
        .limit(limit + 1)
    ))
    more = len(rows) > limit
    rows = rows[:limit]
    held = _assigned(s, device.site_id, {r.card_number for r in rows})
    tids = [r.template_id for r in rows if r.op == "add" and r.template_id]
    templates = {t.id: t for t in s.scalars(select(Template).where(Template.id.in_(tids)))} if tids else {}
    dids = {t.delegate_id for t in templates.values() if t.delegate_id}
    delegates = {d.id: d for d in s.scalars(select(Delegate).where(Delegate.id.in_(dids)))} if dids else {}
    changes: list = []
    for r in rows:
        if r.op == "hold":
            changes.append(wire.CardHeld(version=r.version, card_number=r.card_number, held=r.status))
            continue
        if r.card_number not in held:
            continue  # no longer assigned here: its `hold` none follows, the station drops the card
        if r.op == "add":
            t = templates.get(r.template_id or "")
            if t is None or t.data is None or t.status != TemplateStatus.ACTIVE:
                continue  # purged or revoked since; its revoke entry comes later in the log
            d = delegates.get(t.delegate_id) if t.delegate_id else None
            changes.append(wire.TemplateAdd(
                version=r.version, template_id=t.id, card_number=t.card_number, role=t.role,
                delegate_id=t.delegate_id, valid_until=d.valid_until if d else None, finger=t.finger,
                quality=t.quality, template=t.data, cohort_mean=t.cohort_mean, cohort_sd=t.cohort_sd))
        elif r.op == "revoke":
            changes.append(wire.TemplateRevoke(version=r.version, template_id=r.template_id or "",
                                               card_number=r.card_number))
        elif r.op == "card":
            changes.append(wire.CardStatus(version=r.version, card_number=r.card_number, status=r.status))
    if more:
        version = rows[-1].version
    else:
        # The site's last page: every version up to `committed` was visible to the rows query (read
        # after it), so report the global version and the device skips the other sites' changes.
        version = max(since, committed, rows[-1].version if rows else 0)
    return wire.TemplateFeed(since=since, version=version, changes=changes, more=more)


def _assigned(s: Session, site_id: str, cards: set[str]) -> set[str]:
    out: set[str] = set()
    cards_list = sorted(cards)
    for i in range(0, len(cards_list), 500):
        out.update(s.scalars(select(HolderSite.card_number).where(
            HolderSite.site_id == site_id, HolderSite.card_number.in_(cards_list[i:i + 500]))))
    return out


def card_record(s: Session, card_number: str, held: str, version: int) -> wire.CardRecord:
    """One card as of `version` (the caller holds the feed lock): status, active templates, delegates."""
    holder = s.get(CardHolder, card_number)
    templates = list(s.scalars(select(Template).where(
        Template.card_number == card_number, Template.status == TemplateStatus.ACTIVE, Template.data.is_not(None))
        .order_by(Template.id).limit(200)))
    dids = {t.delegate_id for t in templates if t.delegate_id}
    delegates = {d.id: d for d in s.scalars(select(Delegate).where(Delegate.id.in_(dids)))} if dids else {}
    adds = []
    for t in templates:
        d = delegates.get(t.delegate_id) if t.delegate_id else None
        adds.append(wire.TemplateAdd(
            version=version, template_id=t.id, card_number=t.card_number, role=t.role, delegate_id=t.delegate_id,
            valid_until=d.valid_until if d else None, finger=t.finger, quality=t.quality, template=t.data,
            cohort_mean=t.cohort_mean, cohort_sd=t.cohort_sd))
    return wire.CardRecord(card_number=card_number, status=holder.status, held=held, version=version,
                           templates=adds)
