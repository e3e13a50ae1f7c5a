"""Real data stores for e2e tests: create one with data, change it, and compare a restore with it."""

from __future__ import annotations

import contextlib
import hashlib
import random
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pymysql
import redis

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
# PostgreSQL jobs read their password from here (the deployment sets it to a canary: loopback is trusted).
PG_PASSWORD_VARIABLE = "E2E_PGPASSWORD"


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
        return {"kind": "postgresql", **POSTGRES, "database": self.database, "password_env": PG_PASSWORD_VARIABLE}

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


MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}


def mariadb_connect(database: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(database=database, autocommit=True, charset="utf8mb4", **MARIADB)  # type: ignore[arg-type]


class MariadbSource:
    kind = "mariadb"

    def __init__(self, root: Path) -> None:
        self.database = f"replica_e2e_{secrets.token_hex(4)}"
        self.created: list[str] = [self.database]
        with mariadb_connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{self.database}`")
            cursor.execute("CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL)")
            cursor.execute(
                "CREATE TABLE `order lines` (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT, "
                "amount DECIMAL(12,2), placed_at DATETIME(6), payload BLOB, note TEXT) ENGINE=InnoDB"
            )
            cursor.executemany("INSERT INTO customers (name) VALUES (%s)", [(f"customer {i} ✓",) for i in range(50)])
        self.add_rows(2000)

    def store_config(self) -> dict[str, Any]:
        return {"kind": "mariadb", **MARIADB, "database": self.database}

    def add_rows(self, count: int) -> None:
        rows = [
            (1 + i % 50, round(random.random() * 1000, 2), random.randbytes(16), None if i % 7 == 0 else f"nöte {i} 🚀")
            for i in range(count)
        ]
        with mariadb_connect(self.database) as connection, connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO `order lines` (customer_id, amount, placed_at, payload, note) "
                "VALUES (%s, %s, UTC_TIMESTAMP(6), %s, %s)",
                rows,
            )

    def delete_some(self) -> None:
        with mariadb_connect(self.database) as connection, connection.cursor() as cursor:
            cursor.execute("DELETE FROM `order lines` WHERE id % 4 = 0")

    def restore_target(self, tmp_path: Path) -> str:
        name = f"replica_e2e_restored_{secrets.token_hex(4)}"
        self.created.append(name)
        return name

    def contents(self, target: str | None = None) -> dict[str, Any]:
        with mariadb_connect(target or self.database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT * FROM customers ORDER BY id")
            customers = cursor.fetchall()
            cursor.execute("SELECT * FROM `order lines` ORDER BY id")
            return {"customers": customers, "order lines": cursor.fetchall()}

    def cleanup(self) -> None:
        with mariadb_connect() as connection, connection.cursor() as cursor:
            for name in self.created:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute("SHOW DATABASES LIKE 'replica\\_%'")
            leftovers = [row[0] for row in cursor.fetchall() if row[0].startswith(f"{self.database}_")]
            for name in leftovers:  # databases kept aside by a forced restore
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


REDIS_TEST_DB = 11


class RedisSource:
    """Keys of every type in one logical database of the machine's Redis, under a unique prefix."""

    kind = "redis"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"e2e:{secrets.token_hex(3)}:"
        self.client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_TEST_DB)
        self.counter = 0
        self.client.hset(f"{self.prefix}user:1", mapping={"name": "Ada", "city": "Zürich"})
        self.client.rpush(f"{self.prefix}queue", *[f"job-{i}" for i in range(20)])
        self.client.sadd(f"{self.prefix}tags", "a", "b", "c")
        self.client.zadd(f"{self.prefix}scores", {"ada": 3.5, "bob": 1.25})
        self.client.xadd(f"{self.prefix}events", {"kind": "created"})
        self.client.set(f"{self.prefix}session", "live", ex=3600)
        self.add_rows(200)

    def store_config(self) -> dict[str, Any]:
        return {"kind": "redis", "host": "127.0.0.1", "port": 6379}

    def add_rows(self, count: int) -> None:
        with self.client.pipeline() as pipeline:
            for _ in range(count):
                self.counter += 1
                pipeline.set(f"{self.prefix}item:{self.counter}", random.randbytes(24))
            pipeline.execute()

    def delete_some(self) -> None:
        keys = [f"{self.prefix}item:{number}" for number in range(1, self.counter + 1, 3)]
        self.client.delete(*keys)

    def restore_target(self, tmp_path: Path) -> str:
        return str(tmp_path / "restored.rdb")

    def contents(self, target: str | None = None) -> dict[str, Any]:
        if target is None:
            return redis_contents(self.client, self.prefix)
        with throwaway_redis(Path(target)) as client:
            return redis_contents(client, self.prefix)

    def cleanup(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}*"))
        if keys:
            self.client.delete(*keys)


def redis_value(client: redis.Redis, key: bytes, kind: str) -> Any:
    """Return a key's value in a comparable form."""
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "hash":
        return sorted(client.hgetall(key).items())
    return client.xrange(key)


def redis_contents(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Return every key under `prefix` with its type, value and absolute expiry (ms)."""
    contents: dict[str, Any] = {}
    for raw_key in sorted(client.scan_iter(match=f"{prefix}*")):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        value = redis_value(client, raw_key, kind)
        contents[key] = (kind, value, client.pexpiretime(raw_key))
    return contents


@contextlib.contextmanager
def throwaway_redis(rdb: Path) -> Iterator[redis.Redis]:
    """Start a redis-server on a copy of `rdb` on a free port; yield a client on the test database."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = rdb.parent / f"redis-{port}"
    folder.mkdir()
    shutil.copy(rdb, folder / "dump.rdb")
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, db=REDIS_TEST_DB)
        for _ in range(100):
            try:
                if client.ping() and client.info("persistence")["loading"] == 0:
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield client
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def make_source(kind: str, root: Path) -> Source:
    """Return a new source of `kind` with data in it."""
    kinds: dict[str, Any] = {
        "directory": DirectorySource,
        "sqlite": SqliteSource,
        "postgresql": PostgresqlSource,
        "mariadb": MariadbSource,
        "redis": RedisSource,
    }
    return kinds[kind](root)  # type: ignore[no-any-return]
