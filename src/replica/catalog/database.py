"""Opening the catalog: engine, schema migration to the newest revision, refusal of unknown revisions."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from replica.catalog.schema import (
    MIGRATIONS_PATH,
    SQLITE_BUSY_TIMEOUT_MILLISECONDS,
    known_revisions,
    unusable_catalog,
)
from replica.errors import CatalogError
from replica.urls import redact_url

# Re-exported: where the migrations, the SQLite wait and the known revisions were always imported from.
__all__ = ["MIGRATIONS_PATH", "SQLITE_BUSY_TIMEOUT_MILLISECONDS", "known_revisions", "open_catalog"]
# pg_advisory_xact_lock key of schema migrations (any constant replica owns: "replica" in ASCII).
MIGRATION_LOCK_KEY = 0x7265706C696361


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(value) if value is not None else None


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def open_catalog(url: str) -> sessionmaker[Session]:
    """Return a session factory for the catalog at `url`, migrated to the newest schema.

    Raises CatalogError when the database cannot be reached or carries a schema revision this replica does not
    know (written by a newer release): it never guesses at a schema it does not understand.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    known = known_revisions()
    try:
        with _migration_lock(url), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Held until this transaction ends: a second process waits, then finds the schema current.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            current = _current_revision(connection)
            if current is not None and current not in known:
                raise CatalogError(
                    f"catalog {redact_url(url)} has schema revision '{current}', unknown to this replica "
                    f"(knows {', '.join(known)}); upgrade replica"
                )
            if current != known[-1]:
                _upgrade(connection)
    except SQLAlchemyError as error:
        raise unusable_catalog(url, getattr(error, "orig", None) or error) from None
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock while the schema is checked and migrated, for a SQLite file catalog.

    The daemon and a cron `run-due` starting together on a fresh host would otherwise both create the tables
    ("table runs already exists") or collide on SQLite's write lock. A file beside the catalog carries an flock;
    PostgreSQL takes an advisory lock in the migration's transaction instead.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    lock_path = Path(f"{url.removeprefix('sqlite:///')}.migrate-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _configure_sqlite(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # WAL lets `replica status` read while a backup writes; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
