"""Indexes for `replica status` with thousands of jobs: each fact it shows is one short index walk per job.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNPRUNED = "pruned_at IS NULL"


def upgrade() -> None:
    # The newest verification of each destination with a given outcome (and the destinations a job verified).
    op.create_index(
        "ix_runs_job_kind_destination_status", "runs", ["job", "kind", "destination", "status", "id", "snapshot_id"]
    )
    # The latest verification of one snapshot.
    op.create_index(
        "ix_runs_job_kind_destination_snapshot", "runs", ["job", "kind", "destination", "snapshot_id", "id", "status"]
    )
    # The copies of a backup (a foreign key without an index).
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])
    # A destination's recovery points, newest first, without reading the snapshot rows (fingerprints are large).
    op.create_index(
        "ix_snapshots_unpruned_newest",
        "snapshots",
        ["job", "destination", "taken_at", "id", "snapshot_id", "usable", "pruned_at"],
        sqlite_where=sa.text(UNPRUNED),
        postgresql_where=sa.text(UNPRUNED),
    )


def downgrade() -> None:
    op.drop_index("ix_snapshots_unpruned_newest", "snapshots")
    op.drop_index("ix_runs_parent_run_id", "runs")
    op.drop_index("ix_runs_job_kind_destination_snapshot", "runs")
    op.drop_index("ix_runs_job_kind_destination_status", "runs")
