"""Catalogs for tests: a fresh database on the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth), and
the catalog of an e2e deployment, a SQLite file in its state folder or such a database, read and dumped alike."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

POSTGRESQL_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
POSTGRESQL_URL_PREFIX = "postgresql+psycopg://postgres@127.0.0.1:5432/"
CATALOG_KINDS = ("sqlite", "postgresql")
CATALOG_VARIABLE = "REPLICA_TEST_CATALOG"
DUMP_TIMEOUT_SECONDS = 60


def migrate(url: str, action: Callable[..., None], revision: str) -> None:
    """Run Alembic's `action` (`command.upgrade` or `command.downgrade`) to `revision` on the catalog at `url`, in
    one transaction, as replica runs its migrations. Raises what the migration raises."""
    from alembic.config import Config as AlembicConfig

    from replica.catalog.database import MIGRATIONS_PATH

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = AlembicConfig()
            config.set_main_option("script_location", str(MIGRATIONS_PATH))
            config.attributes["connection"] = connection
            action(config, revision)
    finally:
        engine.dispose()


def selected_catalog_kind(config: pytest.Config) -> str:
    """Return the catalog kind chosen for the e2e deployments (`--catalog`, else REPLICA_TEST_CATALOG, else sqlite).

    Raises pytest.UsageError for an unknown kind.
    """
    kind = str(config.getoption("catalog", None) or os.environ.get(CATALOG_VARIABLE) or "sqlite")
    if kind not in CATALOG_KINDS:
        raise pytest.UsageError(f"unknown catalog {kind!r} (--catalog or {CATALOG_VARIABLE}): use {CATALOG_KINDS}")
    return kind


def namespace_of(module: ModuleType) -> dict[str, Any]:
    """Return the namespace of a test module (tests, fixtures, the private ones included, helpers) for a module that
    runs the same tests on another catalog: pytest collects tests and fixtures from a module's namespace, and the
    variant's own file lets pytest-xdist give it to whichever worker is free."""
    return {name: value for name, value in vars(module).items() if not name.startswith("__")}


def _administer(statement: str) -> None:
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(statement)  # type: ignore[arg-type]  # names come from secrets.token_hex, never from input


def _drop_database(name: str) -> None:
    # FORCE ends the connections a daemon or a failed test left open: the database goes whatever happened.
    _administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgresql_database(prefix: str) -> Iterator[str]:
    """Yield the name of a fresh database on the local PostgreSQL (`prefix_xxxxxxxx`); drop it afterwards, also
    when the block raised. Raises psycopg.Error when the server cannot be reached."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _administer(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _drop_database(name)


def _as_sqlite_shows(value: Any) -> Any:
    """Return a value read from PostgreSQL as SQLite shows the same column, so that tests compare one form: a
    timestamp as SQLAlchemy's naive UTC text, JSON as its text, a boolean as 0 or 1, a numeric sum as a number."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


@dataclass(frozen=True)
class DeploymentCatalog:
    """The catalog an e2e deployment's replica processes use: `kind` is sqlite or postgresql, `url` its URL."""

    kind: str
    url: str
    # The PostgreSQL database's name; the SQLite file's path for a SQLite catalog.
    name: str

    def environment(self) -> dict[str, str]:
        """Return the variables that point replica at this catalog (none for SQLite: the state folder's file is
        replica's default, and a test that changes REPLICA_STATE_DIR gets that folder's catalog)."""
        return {"REPLICA_CATALOG_URL": self.url} if self.kind == "postgresql" else {}

    def _engine(self) -> Engine:
        # No pool: like the sqlite3 connection the tests used to open, nothing stays connected between queries.
        return create_engine(self.url, poolclass=NullPool)

    def rows(self, query: str, **parameters: Any) -> list[tuple[Any, ...]]:
        """Return the rows of `query` (`:name` parameters), each value as SQLite shows it on both kinds."""
        engine = self._engine()
        try:
            with engine.connect() as connection:
                result = connection.execute(text(query), parameters)
                return [tuple(_as_sqlite_shows(value) for value in row) for row in result]
        finally:
            engine.dispose()

    def execute(self, *statements: str, **parameters: Any) -> None:
        """Run `statements` in one transaction (`:name` parameters: each statement takes those it names)."""
        engine = self._engine()
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement), parameters)
        finally:
            engine.dispose()

    def has_schema(self) -> bool:
        """Return whether a replica process created the catalog's schema already."""
        if self.kind == "sqlite":
            return Path(self.name).exists()
        return bool(self.rows("SELECT to_regclass('alembic_version') IS NOT NULL")[0][0])

    def dump(self) -> str:
        """Return the whole catalog as SQL text (schema and rows; empty when no catalog exists yet): what anyone
        reading the database could see. Raises subprocess.CalledProcessError when pg_dump fails."""
        if self.kind == "sqlite":
            if not Path(self.name).exists():
                return ""
            with contextlib.closing(sqlite3.connect(self.name)) as connection:
                return "\n".join(connection.iterdump())
        command = ["pg_dump", "--no-owner", "-h", "127.0.0.1", "-U", "postgres", "-d", self.name]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=DUMP_TIMEOUT_SECONDS).stdout

    @contextlib.contextmanager
    def kept_as_now(self) -> Iterator[Callable[[], None]]:
        """Copy the catalog as it is now; yield a function that puts that copy back over whatever changed since.
        The copy is deleted at the end. No replica process may be connected while it is taken or put back."""
        if self.kind == "sqlite":
            copy = Path(f"{self.name}.kept")
            _copy_sqlite(Path(self.name), copy)
            try:
                yield lambda: _copy_sqlite(copy, Path(self.name))
            finally:
                copy.unlink()
            return
        copy_name = f"{self.name}_kept"
        _administer(f'CREATE DATABASE "{copy_name}" TEMPLATE "{self.name}"')

        def put_back() -> None:
            _drop_database(self.name)
            _administer(f'CREATE DATABASE "{self.name}" TEMPLATE "{copy_name}"')

        try:
            yield put_back
        finally:
            _drop_database(copy_name)


def _copy_sqlite(source_path: Path, target_path: Path) -> None:
    """Copy a SQLite database consistently, WAL included (the online backup API), closing both connections."""
    source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
    with contextlib.closing(source), contextlib.closing(target):
        source.backup(target)


@contextlib.contextmanager
def deployment_catalog(kind: str, state_dir: Path) -> Iterator[DeploymentCatalog]:
    """Yield a new catalog of `kind` for a deployment whose state folder is `state_dir`: the folder's SQLite file
    (created by the first replica process), or a fresh PostgreSQL database dropped at the end, also after a
    failure. Raises ValueError for an unknown kind."""
    if kind == "sqlite":
        path = state_dir / "catalog.sqlite3"
        yield DeploymentCatalog(kind, f"sqlite:///{path}", str(path))
    elif kind == "postgresql":
        with postgresql_database("replica_e2e") as name:
            yield DeploymentCatalog(kind, f"{POSTGRESQL_URL_PREFIX}{name}", name)
    else:
        raise ValueError(f"unknown catalog kind {kind!r}: use one of {', '.join(CATALOG_KINDS)}")
