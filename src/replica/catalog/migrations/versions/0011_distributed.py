"""Distributed execution: the slot (scheduled fire time) a run was started for, one row per dispatched slot of work
(claimed by the worker that runs it, so that a slot runs once however often its task is delivered), and the daemon
that leads the scheduling.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from replica.catalog.models import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("slot", UtcDateTime(), nullable=True))
    op.create_index("ix_runs_job_kind_slot", "runs", ["job", "kind", "slot"])
    op.create_table(
        "work_slots",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("slot", UtcDateTime(), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "scheduler_leaders",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("daemon", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leaders")
    op.drop_table("work_slots")
    op.drop_index("ix_runs_job_kind_slot", table_name="runs")
    op.drop_column("runs", "slot")
