"""Why a snapshot is not usable: startup reconciliation adopts snapshots a crash left unrecorded as unusable.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("unusable_reason", sa.Text, nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: recreating `snapshots` would drop its 0005 triggers.
    op.execute("ALTER TABLE snapshots DROP COLUMN unusable_reason")
