"""device retirement

- devices: retired_at. A retired station is out of service for good: disabled, its token ended,
  its results refused by the ingest, and it cannot be enabled again (register a new device).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fpverify.server.models.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("retired_at", fpverify.server.models.base.UTCDateTime(timezone=True),
                                       nullable=True))


def downgrade() -> None:
    op.drop_column("devices", "retired_at")
