"""A job's snapshot by its id in any destination: the RTO forecast finds the original of every verified copy (its
size when taken) with one index seek, not a walk over the job's snapshots.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_snapshots_job_snapshot_id", "snapshots", ["job", "snapshot_id"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_job_snapshot_id", "snapshots")
