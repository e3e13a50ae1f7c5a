"""The catalog: runs, snapshots, check results and reports, in SQLAlchemy 2 with Alembic migrations."""
