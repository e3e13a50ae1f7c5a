"""The first catalog schema: runs, snapshots, check results, reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from replica.catalog.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("phase", sa.String(64), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("parent_run_id", sa.Integer, sa.ForeignKey("runs.id")),
        sa.Column("snapshot_id", sa.String(64)),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False, index=True),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=False),
        sa.Column("original_id", sa.String(64), nullable=False, index=True),
        sa.Column("backup_run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("taken_at", UtcDateTime(), nullable=False),
        sa.Column("bytes_processed", sa.Integer, nullable=False),
        sa.Column("bytes_added", sa.Integer, nullable=False),
        sa.Column("stored_name", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=False),
        sa.Column("usable", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("job", "destination", "snapshot_id"),
    )
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False, index=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("markdown_path", sa.Text, nullable=False),
        sa.Column("json_path", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("reports", "check_results", "snapshots", "runs"):
        op.drop_table(table)
