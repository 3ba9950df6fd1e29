"""staff templates and PINs for clerk sign-in at the station (issue 15)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder: filled in by the work on this change


def downgrade() -> None:
    pass
