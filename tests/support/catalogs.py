"""Throw-away catalog databases on the local PostgreSQL (127.0.0.1:5432, user postgres, trusted)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg

POSTGRESQL_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


@contextlib.contextmanager
def postgresql_database(prefix: str) -> Iterator[str]:
    """Yield the catalog URL of a fresh database named `PREFIX_xxxxxxxx`, dropped afterwards (with its sessions)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
