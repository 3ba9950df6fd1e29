"""holder-to-site assignment for the per-site template feed (issue 18)

- holder_sites: one row per (card holder, site) whose stations get the holder's templates, with
  the reason (enrolled, admitted, registered, fetched), since and last_seen.
  Indexed by (site_id, reason, last_seen): a site's holders, and its expiring ones at each pull.
- feed_changes: an index on (site_id, version), the per-site read. From here on a row with
  site_id NULL is the registry's own log (the duplicate index, history) and goes to no station;
  every older row has NULL, so stations read on from their version and get only their site.
- Back-fill: each holder is assigned to the sites of their templates (`enrolled`, the earliest
  enrollment there) and of their open inpatient stays (`admitted`); each assignment then appends,
  for its site, a `hold` site and the holder's active templates and card status, so a new
  station of a site fills its cache from version 0. A station filled before this keeps the other
  sites' holders it has: wipe its cache (`fpverify edge wipe`) to refill it for its site only.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fpverify.server.models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = fpverify.server.models.base.UTCDateTime(timezone=True)

ENROLLED = """
SELECT t.card_number, t.site_id, min(t.enrolled_at) FROM templates t JOIN sites s ON s.id = t.site_id
WHERE t.site_id IS NOT NULL GROUP BY t.card_number, t.site_id ORDER BY t.card_number, t.site_id
"""
ADMITTED = """
SELECT card_number, site_id, min(admitted_at) FROM inpatient_stays WHERE discharged_at IS NULL
GROUP BY card_number, site_id ORDER BY card_number, site_id
"""


def upgrade() -> None:
    op.create_table(
        "holder_sites",
        sa.Column("card_number", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("since", UTC, nullable=False),
        sa.Column("last_seen", UTC, nullable=False),
        sa.ForeignKeyConstraint(["card_number"], ["card_holders.card_number"],
                                name=op.f("fk_holder_sites_card_number_card_holders")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_holder_sites_site_id_sites")),
        sa.PrimaryKeyConstraint("card_number", "site_id", name=op.f("pk_holder_sites")),
    )
    op.create_index("ix_holder_sites_site_reason_seen", "holder_sites", ["site_id", "reason", "last_seen"], unique=False)
    op.create_index("ix_feed_changes_site_version", "feed_changes", ["site_id", "version"], unique=False)
    _backfill(op.get_bind())


def _backfill(conn) -> None:
    rows: dict[tuple[str, str], tuple[str, object]] = {}
    for card, site, at in conn.execute(sa.text(ENROLLED)):
        rows[(card, site)] = ("enrolled", at)
    for card, site, at in conn.execute(sa.text(ADMITTED)):
        rows.setdefault((card, site), ("admitted", at))
    if not rows:
        return
    holder_sites = sa.table("holder_sites", sa.column("card_number"), sa.column("site_id"), sa.column("reason"),
                            sa.column("since", UTC), sa.column("last_seen", UTC))
    feed = sa.table("feed_changes", sa.column("version"), sa.column("op"), sa.column("card_number"),
                    sa.column("template_id"), sa.column("status"), sa.column("site_id"), sa.column("at", UTC))
    now = fpverify.server.models.base.utcnow()
    version = int(conn.execute(sa.text("SELECT value FROM counters WHERE name = 'feed'")).scalar() or 0)
    assignments, changes = [], []
    for (card, site), (reason, at) in sorted(rows.items()):
        since = at if getattr(at, "tzinfo", None) else now  # SQLite hands back naive text
        assignments.append({"card_number": card, "site_id": site, "reason": reason, "since": since, "last_seen": now})
        version += 1
        changes.append({"version": version, "op": "hold", "card_number": card, "template_id": None,
                        "status": "site", "site_id": site, "at": now})
        for (tid,) in conn.execute(sa.text(
                "SELECT id FROM templates WHERE card_number = :c AND status = 'active' AND data IS NOT NULL "
                "ORDER BY id"), {"c": card}):
            version += 1
            changes.append({"version": version, "op": "add", "card_number": card, "template_id": tid,
                            "status": None, "site_id": site, "at": now})
        status = conn.execute(sa.text("SELECT status FROM card_holders WHERE card_number = :c"), {"c": card}).scalar()
        version += 1
        changes.append({"version": version, "op": "card", "card_number": card, "template_id": None,
                        "status": status, "site_id": site, "at": now})
    op.bulk_insert(holder_sites, assignments)
    for i in range(0, len(changes), 5000):
        op.bulk_insert(feed, changes[i:i + 5000])
    conn.execute(sa.text("UPDATE counters SET value = :v WHERE name = 'feed'"), {"v": version})


def downgrade() -> None:
    op.drop_index("ix_feed_changes_site_version", table_name="feed_changes")
    op.drop_index("ix_holder_sites_site_reason_seen", table_name="holder_sites")
    op.drop_table("holder_sites")
