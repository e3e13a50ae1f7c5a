"""Daemon support: per-job run locks, objective breaches, pruned snapshots.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from replica.catalog.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_locks",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "breaches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False, index=True),
        sa.Column("objective", sa.String(16), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("cleared_at", UtcDateTime()),
        sa.Column("measured_seconds", sa.Float),
        sa.Column("objective_seconds", sa.Float, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id")),
        sa.Column("cleared_detail", sa.Text),
    )
    # At most one open breach per job and objective, whatever the isolation level of the catalog's database.
    op.create_index(
        "ux_breaches_open",
        "breaches",
        ["job", "objective"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    # batch mode: SQLite cannot add a foreign key column in place.
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("pruned_at", UtcDateTime()))
        batch.add_column(sa.Column("prune_run_id", sa.Integer, sa.ForeignKey("runs.id", name="fk_snapshots_prune_run")))
    # run-due and the watchdog look up the newest run of each job and kind.
    op.create_index("ix_runs_job_kind_id", "runs", ["job", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_job_kind_id", "runs")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("prune_run_id")
        batch.drop_column("pruned_at")
    op.drop_index("ux_breaches_open", "breaches")
    op.drop_table("breaches")
    op.drop_table("job_locks")
