"""Opening the catalog: engine, schema migration to the newest revision, refusal of unknown revisions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from replica.errors import CatalogError

MIGRATIONS_PATH = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MILLISECONDS = 30_000


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    config.attributes["engine"] = engine
    return config


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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
    config = _alembic_config(engine)
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None and current not in known:
                raise CatalogError(
                    f"catalog {_redacted(url)} has schema revision '{current}', unknown to this replica "
                    f"(knows {', '.join(sorted(known))}); upgrade replica"
                )
            if current != script.get_current_head():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
    except SQLAlchemyError as error:
        raise CatalogError(
            f"catalog {_redacted(url)} cannot be used: {str(getattr(error, 'orig', None) or error).splitlines()[0]}"
        ) from None
    return sessionmaker(engine, expire_on_commit=False)


def _configure_sqlite(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # WAL lets `replica status` read while a backup writes; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
