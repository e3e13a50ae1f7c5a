"""The last measured replication lag of each physical job's WAL archive, per destination (status reads it), and the
recent source positions it is measured from.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from replica.catalog.models import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wal_lags",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("destination", sa.String(64), primary_key=True),
        sa.Column("measured_at", UtcDateTime(), nullable=False),
        sa.Column("lag_seconds", sa.Float, nullable=True),
        sa.Column("lag_is_lower_bound", sa.Boolean, nullable=False),
        sa.Column("newest_segment", sa.String(64), nullable=True),
        sa.Column("newest_stored_at", UtcDateTime(), nullable=True),
        sa.Column("insert_lsn", sa.String(32), nullable=False),
    )
    op.create_table(
        "wal_positions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("measured_at", UtcDateTime(), nullable=False),
        sa.Column("insert_lsn", sa.String(32), nullable=False),
    )
    op.create_index("ix_wal_positions_job_measured_at", "wal_positions", ["job", "measured_at"])


def downgrade() -> None:
    op.drop_index("ix_wal_positions_job_measured_at", table_name="wal_positions")
    op.drop_table("wal_positions")
    op.drop_table("wal_lags")
