"""Per-job status summaries: a revision per job, bumped by the database itself, and a cache of status facts.

Every insert, update or delete of a job's runs, snapshots or check results bumps `job_revisions.revision` of that
job, by a trigger, in the writing transaction: no write path of replica (or of anyone else with SQL access) can
change a job's history without moving its revision. `job_status_cache` holds the status facts computed at a
revision; `replica status` reuses them while the revision has not moved (see `replica.catalog.summaries`).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Per table, the job of one of its rows as SQL (`{row}` is NEW or OLD): check results belong to their run's job.
JOB_OF_ROW = {
    "runs": "{row}.job",
    "snapshots": "{row}.job",
    "check_results": "(SELECT job FROM runs WHERE runs.id = {row}.run_id)",
}
OPERATIONS = ("INSERT", "UPDATE", "DELETE")
POSTGRESQL_FUNCTION = "replica_bump_job_revision"


def upgrade() -> None:
    op.create_table(
        "job_revisions",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_table(
        "job_status_cache",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
    )
    # Jobs with history before this migration start at revision 1 (a job without a row is at revision 0).
    op.execute(
        "INSERT INTO job_revisions (job, revision) "
        "SELECT job, 1 FROM (SELECT job FROM runs UNION SELECT job FROM snapshots) AS jobs"
    )
    if op.get_bind().dialect.name == "sqlite":
        for table, job_of in JOB_OF_ROW.items():
            for operation in OPERATIONS:
                op.execute(_sqlite_trigger(table, operation, job_of))
    else:
        op.execute(_POSTGRESQL_FUNCTION_SQL)
        for table in JOB_OF_ROW:
            op.execute(
                f"CREATE TRIGGER {table}_bump_job_revision AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {POSTGRESQL_FUNCTION}()"
            )


def _sqlite_trigger(table: str, operation: str, job_of: str) -> str:
    """Return the SQLite trigger bumping the revision of the job(s) of each row `operation` touches."""
    rows = {"INSERT": ("NEW",), "UPDATE": ("NEW", "OLD"), "DELETE": ("OLD",)}[operation]
    statements = []
    for row in rows:
        job = job_of.format(row=row)
        condition = f"{job} IS NOT NULL"
        if row == "OLD" and operation == "UPDATE":  # a row moved to another job: both jobs changed
            condition += f" AND {job} IS NOT {job_of.format(row='NEW')}"
        # INSERT ... SELECT ... WHERE: SQLite needs the WHERE to parse the upsert clause after a SELECT.
        statements.append(
            f"INSERT INTO job_revisions (job, revision) SELECT {job}, 1 WHERE {condition} "
            "ON CONFLICT (job) DO UPDATE SET revision = revision + 1;"
        )
    return (
        f"CREATE TRIGGER {table}_bump_job_revision_{operation.lower()} AFTER {operation} ON {table} "
        f"BEGIN {' '.join(statements)} END"
    )


_POSTGRESQL_FUNCTION_SQL = f"""
CREATE FUNCTION {POSTGRESQL_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    jobs text[] := '{{}}';
BEGIN
    IF TG_TABLE_NAME = 'check_results' THEN
        IF TG_OP <> 'DELETE' THEN
            jobs := jobs || (SELECT job::text FROM runs WHERE runs.id = NEW.run_id);
        END IF;
        IF TG_OP <> 'INSERT' THEN
            jobs := jobs || (SELECT job::text FROM runs WHERE runs.id = OLD.run_id);
        END IF;
    ELSE
        IF TG_OP <> 'DELETE' THEN
            jobs := jobs || NEW.job::text;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            jobs := jobs || OLD.job::text;
        END IF;
    END IF;
    -- Sorted, so that two transactions bumping the same jobs lock their rows in the same order.
    INSERT INTO job_revisions AS current (job, revision)
    SELECT DISTINCT changed.job, 1 FROM unnest(jobs) AS changed (job) WHERE changed.job IS NOT NULL
    ORDER BY changed.job
    ON CONFLICT (job) DO UPDATE SET revision = current.revision + 1;
    RETURN NULL;
END $$
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in JOB_OF_ROW:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_job_revision_{operation.lower()}")
    else:
        for table in JOB_OF_ROW:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_job_revision ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {POSTGRESQL_FUNCTION}()")
    op.drop_table("job_status_cache")
    op.drop_table("job_revisions")
