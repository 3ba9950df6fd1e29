"""one stored signed result per (device, counter)

- verification_results: a unique index on (device_id, counter) for signed rows (signature not
  null; unsigned demo rows never count). Two registry processes can then never both store one
  counter of a device: the ingest writer turns the loser into a replay (dead letter + alert).

A database that already holds such a pair (the race this closes) is refused with the query that
lists them: they are evidence for the insurance office, so nothing is deleted here.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SIGNED = "signature IS NOT NULL"
DUPLICATES = ("SELECT device_id, counter, count(*) FROM verification_results WHERE signature IS NOT NULL "
              "GROUP BY device_id, counter HAVING count(*) > 1")


def upgrade() -> None:
    found = op.get_bind().execute(sa.text(DUPLICATES)).fetchall()
    if found:
        raise RuntimeError(f"{len(found)} (device, counter) pairs are stored twice among signed results; "
                           f"review them ({DUPLICATES}) and resolve each before migrating")
    op.create_index("uq_results_device_counter", "verification_results", ["device_id", "counter"], unique=True,
                    postgresql_where=sa.text(SIGNED), sqlite_where=sa.text(SIGNED))


def downgrade() -> None:
    op.drop_index("uq_results_device_counter", table_name="verification_results")
