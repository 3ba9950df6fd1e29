"""holder-to-site assignment for the per-site template feed (issue 18)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder: filled in by the work on this change


def downgrade() -> None:
    pass
