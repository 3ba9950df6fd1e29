"""Per-device incremental template feed (edge.wire.TemplateFeed) and its MQTT change notification.

Every change a station must apply (template added, template revoked, card blocked/unblocked) is a
FeedChange row whose version comes from the 'feed' counter; bumping it with UPDATE .. RETURNING
locks the counter row until commit, so versions become visible in order and a station that has
seen version V never misses a change below V. Template bytes are not copied into the log: an
'add' whose template was purged later (consent withdrawn) is skipped, the later 'revoke' follows.

After a commit that appended changes, `TemplatesChanged(version)` is published retained on each
device's templates topic (server/ingest/notifier.py; the Database calls it from an after_commit hook).
"""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server.models import (
    CardHolder,
    Counter,
    Delegate,
    Device,
    FeedChange,
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
    return version


def note_pull(device: Device, since: int) -> None:
    """A pull says which version the station's cache holds (`since`): keep it as its live cache
    version (DeviceStatus reports it only at connect). Telemetry, like presence: not audited."""
    device.cache_version = since
    device.last_seen = max(filter(None, [device.last_seen, utcnow()]))


def build_feed(s: Session, device: Device, since: int, limit: int) -> wire.TemplateFeed:
    """Changes after `since` that concern the device's site, in version order, at most `limit`."""
    # Read the counter before the rows: a change committing in between then shows up next time.
    committed = current_version(s)
    rows = list(s.scalars(
        select(FeedChange)
        .where(FeedChange.version > since, or_(FeedChange.site_id.is_(None), FeedChange.site_id == device.site_id))
        .order_by(FeedChange.version)
        .limit(limit + 1)
    ))
    more = len(rows) > limit
    rows = rows[:limit]
    tids = [r.template_id for r in rows if r.op == "add" and r.template_id]
    templates = {t.id: t for t in s.scalars(select(Template).where(Template.id.in_(tids)))} if tids else {}
    dids = {t.delegate_id for t in templates.values() if t.delegate_id}
    delegates = {d.id: d for d in s.scalars(select(Delegate).where(Delegate.id.in_(dids)))} if dids else {}
    changes: list = []
    for r in rows:
        if r.op == "add":
            t = templates.get(r.template_id or "")
            if t is None or t.data is None or t.status != TemplateStatus.ACTIVE:
                continue  # purged or revoked since; its revoke entry comes later in the log
            d = delegates.get(t.delegate_id) if t.delegate_id else None
            changes.append(wire.TemplateAdd(
                version=r.version, template_id=t.id, card_number=t.card_number, role=t.role,
                delegate_id=t.delegate_id, valid_until=d.valid_until if d else None, finger=t.finger,
                quality=t.quality, template=t.data))
        elif r.op == "revoke":
            changes.append(wire.TemplateRevoke(version=r.version, template_id=r.template_id or "",
                                               card_number=r.card_number))
        elif r.op == "card":
            changes.append(wire.CardStatus(version=r.version, card_number=r.card_number, status=r.status))
    if rows:
        version = rows[-1].version
    else:
        # Nothing new for this site: report the global version so the device can skip ahead.
        version = max(since, committed)
    return wire.TemplateFeed(since=since, version=version, changes=changes, more=more)


def card_statuses(s: Session) -> dict[str, str]:
    return dict(s.execute(select(CardHolder.card_number, CardHolder.status)).all())
