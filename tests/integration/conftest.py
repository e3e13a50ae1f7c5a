"""Fixtures of the integration tier: one moto S3 server per session, unique names for everything it creates."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import replica.catalog.summaries
from replica.catalog.facts import LatestRecords
from tests.support.catalogs import CATALOG_KINDS, POSTGRESQL_URL_PREFIX, postgresql_database
from tests.support.s3server import S3Server, start_s3_server


def unique_name(prefix: str) -> str:
    """Return `prefix-xxxxxxxx` (or with `_` when the prefix uses it), so that repeated runs never collide."""
    separator = "_" if "_" in prefix else "-"
    return f"{prefix}{separator}{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1, shared by the whole session (starting one costs about a second)."""
    yield from start_s3_server()


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket on the session's S3 server, deleted with its objects afterwards."""
    name = unique_name("replica-it")
    s3_server.create_bucket(name)
    yield name
    s3_server.delete_bucket(name)


@pytest.fixture(params=CATALOG_KINDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty catalog: a SQLite file, or a fresh database on the local PostgreSQL (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    with postgresql_database("replica_status") as name:
        yield f"{POSTGRESQL_URL_PREFIX}{name}"


@pytest.fixture
def postgresql_catalog_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL catalog database (dropped after)."""
    with postgresql_database("replica_catalog") as name:
        yield f"{POSTGRESQL_URL_PREFIX}{name}"


@pytest.fixture
def recomputed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The jobs whose status facts were recomputed from the runs (replica.catalog.summaries), in order (the real
    computation still runs)."""
    jobs: list[str] = []
    compute = replica.catalog.summaries.read_latest

    def spy(connection: Any, names: Sequence[str]) -> dict[str, LatestRecords]:
        jobs.extend(names)
        return compute(connection, names)

    monkeypatch.setattr(replica.catalog.summaries, "read_latest", spy)
    return jobs
