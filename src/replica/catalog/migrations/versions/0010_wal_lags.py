"""The last measured replication lag of each physical job's WAL archive, per destination (status reads it).

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
        sa.Column("newest_segment", sa.String(64), nullable=True),
        sa.Column("newest_stored_at", UtcDateTime(), nullable=True),
        sa.Column("insert_lsn", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wal_lags")
