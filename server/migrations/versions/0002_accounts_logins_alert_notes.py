"""accounts by approval, login throttling, alert notes

- users: created_by (who asked for the account), must_change_password (one-time passwords);
  the account-wide lockout columns go (delays are per client and user name now).
- approvals: param (the role of an account operation).
- login_throttle: failed logins per (client, user name) and attempts per client.
- alert_notes: every note on an alert, kept; the audit log holds each one's digest. Comments
  already on alerts stay in alerts.comment (notes start with this revision).

Plain ALTER TABLE (SQLite >= 3.35 drops columns itself): a batch copy of `users` would drop the
old table, and with foreign keys on that would cascade to api_tokens.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fpverify.server.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = fpverify.server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("users", sa.Column("created_by", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.drop_column("users", "failed_logins")
    op.drop_column("users", "locked_until")
    op.add_column("approvals", sa.Column("param", sa.String(length=64), nullable=True))
    op.create_table(
        "login_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("not_before", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_throttle")),
        sa.UniqueConstraint("client", "username", name="uq_login_throttle_client_username"),
    )
    op.create_index(op.f("ix_login_throttle_at"), "login_throttle", ["at"], unique=False)
    op.create_table(
        "alert_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_notes_alert_id_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notes")),
    )
    op.create_index(op.f("ix_alert_notes_alert_id"), "alert_notes", ["alert_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_notes_alert_id"), table_name="alert_notes")
    op.drop_table("alert_notes")
    op.drop_index(op.f("ix_login_throttle_at"), table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_column("approvals", "param")
    op.add_column("users", sa.Column("locked_until", UTC, nullable=True))
    op.add_column("users", sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
    op.drop_column("users", "must_change_password")
    op.drop_column("users", "created_by")
