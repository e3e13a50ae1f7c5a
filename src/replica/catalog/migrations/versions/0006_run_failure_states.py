"""The failure state of each run: why it failed, as one stable name (`replica.errors.FAILURE_STATES`).

Runs that failed before this migration keep a NULL state, shown as `failed`.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("failure", sa.String(32), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: recreating `runs` would drop its 0005 triggers.
    op.execute("ALTER TABLE runs DROP COLUMN failure")
