"""What every way of opening the catalog agrees on, without SQLAlchemy: the schema revisions this replica knows and
how long a SQLite connection waits for a lock (`replica.catalog.database` opens it with SQLAlchemy and migrates it;
`replica.catalog.summary_reader` only reads it, with the database's own driver)."""

from __future__ import annotations

from pathlib import Path

from replica.errors import CatalogError
from replica.urls import redact_text, redact_url

MIGRATIONS_PATH = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 30_000


def known_revisions() -> list[str]:
    """Return the schema revisions this replica knows, oldest first.

    By convention a migration file is named `REVISION_description.py` with `revision = "REVISION"` (a unit test
    holds every file to it), so the revisions are known without importing Alembic, which costs ~0.5 s per command.
    """
    return sorted(path.name.split("_", 1)[0] for path in (MIGRATIONS_PATH / "versions").glob("[0-9]*_*.py"))


def unusable_catalog(url: str, error: BaseException) -> CatalogError:
    """Return the CatalogError saying that the catalog at `url` cannot be used, and why: the first line of `error`
    (a driver's error). The URL's password, and any credentials the driver's message quotes, are redacted."""
    lines = str(error).splitlines()
    reason = redact_text(lines[0] if lines else type(error).__name__)
    return CatalogError(f"catalog {redact_url(url)} cannot be used: {reason}")
