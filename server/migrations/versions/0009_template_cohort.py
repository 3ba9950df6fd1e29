"""impostor-cohort statistics of each template (issue 17)

templates.cohort_mean, templates.cohort_sd: the mean and standard deviation of the template's
scores against a cohort of other holders' active templates, computed at enrollment
(server/cohort.py). Null when the registry had fewer than matcher.decision.MIN_COHORT decodable
cohort templates, or for templates stored before this revision: the station then decides on the
raw rule for any card with such a template.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("cohort_mean", sa.Double(), nullable=True))
        batch.add_column(sa.Column("cohort_sd", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("cohort_sd")
        batch.drop_column("cohort_mean")
