"""suspicion points marked handled

- suspicion_marks: one row per suspicion point (kind, key) marked handled on the dashboard, with
  who, when and the note; each is also an audit entry. The points themselves stay computed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fpverify.server.models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC = fpverify.server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "suspicion_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("handled_by", sa.String(length=64), nullable=False),
        sa.Column("handled_at", UTC, nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspicion_marks")),
        sa.UniqueConstraint("kind", "key", name="uq_suspicion_marks_kind_key"),
    )


def downgrade() -> None:
    op.drop_table("suspicion_marks")
