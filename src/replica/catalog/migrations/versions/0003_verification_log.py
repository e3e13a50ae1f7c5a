"""The verification log (a hash chain of events, append-only) and HTML report paths.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "the verification log is append-only"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("job", sa.String(64)),
        sa.Column("destination", sa.String(64)),
        sa.Column("snapshot", sa.String(64)),
        sa.Column("run_id", sa.Integer),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.String(16)),
        sa.Column("signature", sa.String(128)),
    )
    op.create_index("ix_events_recorded_at", "events", ["recorded_at"])
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_job", "events", ["job"])
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_table(
        "event_log_lock",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("appended_at", sa.String(32)),
    )
    op.execute("INSERT INTO event_log_lock (id, appended_at) VALUES (1, NULL)")
    op.add_column("reports", sa.Column("html_path", sa.Text))
    # Defence in depth: replica never updates or deletes an event, and the database refuses it too. Whoever owns
    # the database can drop these triggers; the hash chain is what detects that.
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION replica_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION replica_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS replica_events_append_only()")
    with op.batch_alter_table("reports") as batch:  # SQLite drops a column by rebuilding the table
        batch.drop_column("html_path")
    op.drop_table("event_log_lock")
    op.drop_table("events")
