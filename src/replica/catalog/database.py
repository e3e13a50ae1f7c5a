"""Opening the catalog: engine, schema migration to the newest revision, refusal of unknown revisions."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from replica.errors import CatalogError

MIGRATIONS_PATH = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 30_000


def known_revisions() -> list[str]:
    """Return the schema revisions this replica knows, oldest first.

    By convention a migration file is named `REVISION_description.py` with `revision = "REVISION"` (a unit test
    holds every file to it), so the revisions are known without importing Alembic, which costs ~0.5 s per command.
    """
    return sorted(path.name.split("_", 1)[0] for path in (MIGRATIONS_PATH / "versions").glob("[0-9]*_*.py"))


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


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
        with engine.begin() as connection:
            current = _current_revision(connection)
            if current is not None and current not in known:
                raise CatalogError(
                    f"catalog {_redacted(url)} has schema revision '{current}', unknown to this replica "
                    f"(knows {', '.join(known)}); upgrade replica"
                )
            if current != known[-1]:
                _upgrade(connection)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise CatalogError(f"catalog {_redacted(url)} cannot be used: {reason}") from None
    return sessionmaker(engine, expire_on_commit=False)


def _configure_sqlite(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # WAL lets `replica status` read while a backup writes; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
