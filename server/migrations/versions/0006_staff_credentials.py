"""staff templates and PINs for clerk sign-in at the station (issue 15)

- staff_credentials: one per enrollment of a clerk's sign-in (account, site, Argon2id PIN hash,
  pending until a supervisor approves the `staff_credential` special operation).
- staff_templates: the clerk's finger templates of a credential; deleted when it ends.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fpverify.server.models.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = fpverify.server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("pin_hash", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("decided_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_staff_credentials_site_id_sites")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_staff_credentials_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_credentials")),
    )
    op.create_index(op.f("ix_staff_credentials_site_id"), "staff_credentials", ["site_id"])
    op.create_index(op.f("ix_staff_credentials_status"), "staff_credentials", ["status"])
    op.create_index(op.f("ix_staff_credentials_user_id"), "staff_credentials", ["user_id"])
    op.create_table(
        "staff_templates",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("finger", sa.Integer(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["credential_id"], ["staff_credentials.id"], ondelete="CASCADE",
                                name=op.f("fk_staff_templates_credential_id_staff_credentials")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_templates")),
    )
    op.create_index(op.f("ix_staff_templates_credential_id"), "staff_templates", ["credential_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_templates_credential_id"), table_name="staff_templates")
    op.drop_table("staff_templates")
    for col in ("user_id", "status", "site_id"):
        op.drop_index(op.f(f"ix_staff_credentials_{col}"), table_name="staff_credentials")
    op.drop_table("staff_credentials")
