"""Real data stores for e2e tests: create one with data, change it, and compare a restore with it."""

from __future__ import annotations

import hashlib
import random
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import psycopg

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


class Source(Protocol):
    """A store the tests own."""

    kind: str

    def store_config(self) -> dict[str, Any]: ...
    def add_rows(self, count: int) -> None: ...
    def delete_some(self) -> None: ...
    def restore_target(self, tmp_path: Path) -> str: ...
    def contents(self, target: str | None = None) -> Any: ...
    def cleanup(self) -> None: ...


class DirectorySource:
    kind = "directory"

    def __init__(self, root: Path) -> None:
        self.root = root / "uploads"
        self.root.mkdir()
        (self.root / "nested" / "deeper").mkdir(parents=True)
        (self.root / "empty-file").write_bytes(b"")
        (self.root / "nested" / "deeper" / "blob.bin").write_bytes(random.randbytes(300_000))
        self.counter = 0
        self.add_rows(40)

    def store_config(self) -> dict[str, Any]:
        return {"kind": "directory", "path": str(self.root)}

    def add_rows(self, count: int) -> None:
        for _ in range(count):
            self.counter += 1
            (self.root / "nested" / f"file-{self.counter:04d}.txt").write_text(f"upload {self.counter}\n" * 50)

    def delete_some(self) -> None:
        for path in sorted((self.root / "nested").glob("file-*.txt"))[:5]:
            path.unlink()

    def restore_target(self, tmp_path: Path) -> str:
        return str(tmp_path / "restored-uploads")

    def contents(self, target: str | None = None) -> dict[str, str]:
        root = Path(target) if target else self.root
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    def cleanup(self) -> None:
        pass


class SqliteSource:
    kind = "sqlite"

    def __init__(self, root: Path) -> None:
        self.path = root / "app.sqlite3"
        connection = sqlite3.connect(self.path)
        connection.executescript(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB);"
            "CREATE TABLE 'odd name' (k TEXT, v TEXT);"
            "INSERT INTO 'odd name' VALUES ('a', NULL), ('b', 'ünïcode');"
        )
        connection.close()
        self.add_rows(500)

    def store_config(self) -> dict[str, Any]:
        return {"kind": "sqlite", "path": str(self.path)}

    def add_rows(self, count: int) -> None:
        with sqlite3.connect(self.path) as connection:
            connection.executemany(
                "INSERT INTO items (name, price, data) VALUES (?, ?, ?)",
                [(f"item {secrets.token_hex(3)}", random.random() * 100, random.randbytes(32)) for _ in range(count)],
            )
        connection.close()

    def delete_some(self) -> None:
        with sqlite3.connect(self.path) as connection:
            connection.execute("DELETE FROM items WHERE id % 3 = 0")
        connection.close()

    def restore_target(self, tmp_path: Path) -> str:
        return str(tmp_path / "restored.sqlite3")

    def contents(self, target: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
        connection = sqlite3.connect(target or self.path)
        try:
            return {
                "items": connection.execute("SELECT * FROM items ORDER BY id").fetchall(),
                "odd name": connection.execute("SELECT * FROM 'odd name' ORDER BY k").fetchall(),
            }
        finally:
            connection.close()

    def cleanup(self) -> None:
        pass


def postgres_connect(database: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(dbname=database, autocommit=autocommit, **POSTGRES)  # type: ignore[arg-type]


def drop_database(name: str) -> None:
    with postgres_connect("postgres") as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def databases_like(pattern: str) -> list[str]:
    with postgres_connect("postgres") as connection:
        return [
            row[0] for row in connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))
        ]


class PostgresqlSource:
    kind = "postgresql"

    def __init__(self, root: Path) -> None:
        self.database = f"replica_e2e_{secrets.token_hex(4)}"
        self.created: list[str] = [self.database]
        with postgres_connect("postgres") as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
        with postgres_connect(self.database) as connection:
            connection.execute(
                "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, country char(2));"
                "CREATE SCHEMA sales;"
                "CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),"
                " amount numeric(12,2), placed_at timestamptz DEFAULT now(), payload bytea, note text);"
            )
            connection.execute(
                "INSERT INTO customers (name, country) SELECT 'customer ' || g, 'DE' FROM generate_series(1, 50) g"
            )
        self.add_rows(2000)

    def store_config(self) -> dict[str, Any]:
        return {"kind": "postgresql", **POSTGRES, "database": self.database}

    def add_rows(self, count: int) -> None:
        with postgres_connect(self.database) as connection:
            connection.execute(
                "INSERT INTO sales.orders (customer_id, amount, payload, note) "
                "SELECT 1 + (g %% 50), (random() * 1000)::numeric(12,2), decode(md5(random()::text), 'hex'), "
                "CASE WHEN g %% 7 = 0 THEN NULL ELSE 'nöte ' || g END FROM generate_series(1, %s) g",
                (count,),
            )

    def delete_some(self) -> None:
        with postgres_connect(self.database) as connection:
            connection.execute("DELETE FROM sales.orders WHERE id % 4 = 0")

    def restore_target(self, tmp_path: Path) -> str:
        name = f"replica_e2e_restored_{secrets.token_hex(4)}"
        self.created.append(name)
        return name

    def contents(self, target: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
        with postgres_connect(target or self.database) as connection:
            return {
                "customers": connection.execute("SELECT * FROM customers ORDER BY id").fetchall(),
                "orders": connection.execute("SELECT * FROM sales.orders ORDER BY id").fetchall(),
            }

    def cleanup(self) -> None:
        for name in self.created:
            drop_database(name)


def make_source(kind: str, root: Path) -> Source:
    """Return a new source of `kind` with data in it."""
    return {"directory": DirectorySource, "sqlite": SqliteSource, "postgresql": PostgresqlSource}[kind](root)
