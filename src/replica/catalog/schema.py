"""What every way of opening the catalog agrees on, without SQLAlchemy: the schema revisions this replica knows and
how long a SQLite connection waits for a lock (`replica.catalog.database` opens it with SQLAlchemy and migrates it;
`replica.catalog.summary_reader` only reads it, with the database's own driver)."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_PATH = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 30_000


def known_revisions() -> list[str]:
    """Return the schema revisions this replica knows, oldest first.

    By convention a migration file is named `REVISION_description.py` with `revision = "REVISION"` (a unit test
    holds every file to it), so the revisions are known without importing Alembic, which costs ~0.5 s per command.
    """
    return sorted(path.name.split("_", 1)[0] for path in (MIGRATIONS_PATH / "versions").glob("[0-9]*_*.py"))
