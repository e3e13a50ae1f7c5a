"""`replica status` reads the cached per-job facts without SQLAlchemy (replica.catalog.summary_reader) and writes its
table straight from what it says of each job (replica.cli.render.status_table_of). Both must give exactly what the
catalog's path and the documents give, on SQLite and PostgreSQL, and a job whose summary is stale must still be
recomputed (and stored back) through the catalog."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import replica.actions.status
import replica.catalog.summaries
from replica.actions.context import Context
from replica.actions.status import collect_status, collect_views
from replica.catalog.database import open_catalog
from replica.catalog.facts import LagRecord, LatestRecords
from replica.catalog.records import Catalog
from replica.catalog.summary_reader import _psycopg_parameters, open_summary_reader
from replica.cli.json_text import indented_json
from replica.cli.render import status_table, status_table_of
from tests.integration.test_status_grouped import JOBS, History, context_with_history, snapshot_ids
from tests.support.catalogs import POSTGRESQL_URL_PREFIX
from tests.support.cli import run_replica

NOW = datetime(2026, 11, 27, 12, 0, 0, 250_000, tzinfo=UTC)
PASSWORD = "s3cr@t"  # in a URL: s3cr%40t


class _FrozenClock(datetime):
    """`datetime` whose now() is NOW: two ways of collecting the status compare at the same moment."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW


@pytest.fixture
def context(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A context over six jobs with varied histories, WAL lags, a leading daemon and a broken job file, status's
    clock frozen at NOW and every job's summary cached."""
    context = context_with_history(catalog_url, tmp_path)
    (tmp_path / "jobs" / "broken.yaml").write_text("name: broken\nstore: {kind: nothing}\n")
    context.catalog.wal_lags.record(
        [
            LagRecord("alpha", "primary", NOW - timedelta(minutes=3), 12.5, "000000010000000000000003", NOW, "0/3"),
            LagRecord("alpha", "offsite", NOW - timedelta(hours=2), 3600.0, None, None, "0/1", lower_bound=True),
            LagRecord("beta", "primary", NOW, None, None, None, "0/0"),
        ]
    )
    context.catalog.leaders.took_lead("daemon@host-a:41", "celery")
    monkeypatch.setattr(replica.actions.status, "datetime", _FrozenClock)
    collect_status(context)  # caches every job's summary
    yield context
    context.catalog.sessions.kw["bind"].dispose()


def test_direct_read_gives_the_catalog_paths_document_and_table(
    context: Context, recomputed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN every summary cached; the catalog's path read first
    expected = collect_status(context)
    assert expected["jobs"][0]["destinations"][0]["wal_lag"] is not None  # the lags, leader and broken job show
    assert expected["scheduler"]["leader"] == "daemon@host-a:41"
    assert [broken["job"] for broken in expected["broken_jobs"]] == ["broken"]

    # WHEN status reads directly, with the catalog's reading made to fail
    def refuse(self: Catalog, jobs: Sequence[str]) -> dict[str, LatestRecords]:
        raise AssertionError(f"read through the catalog: {jobs}")

    monkeypatch.setattr(Catalog, "latest_records", refuse)
    document = collect_status(context, read_directly=True)

    # THEN the document, its JSON text and the table are the same, and nothing was recomputed
    assert document == expected
    assert indented_json(document) == indented_json(expected)
    assert status_table_of(collect_views(context, read_directly=True)) == status_table(expected)
    assert recomputed == []


def test_a_stale_summary_is_recomputed_through_the_catalog_and_stored(context: Context, recomputed: list[str]) -> None:
    # GIVEN a verification of gamma written after its summary was cached
    catalog = context.catalog
    history = History(catalog)
    history.counter = 2_000
    history.backup("gamma", 40)
    history.verify("gamma", "primary", snapshot_ids(catalog, "gamma", "primary")[0], rto=9.5)

    # WHEN status reads directly
    document = collect_status(context, read_directly=True)

    # THEN only gamma was recomputed, and the document is the catalog path's
    assert recomputed == ["gamma"]
    assert document == collect_status(context)
    gamma = next(job for job in document["jobs"] if job["job"] == "gamma")
    assert gamma["destinations"][0]["newest_verified_snapshot"] == snapshot_ids(catalog, "gamma", "primary")[0]
    # and its facts were stored back: the next direct read recomputes nothing
    recomputed.clear()
    assert collect_status(context, read_directly=True) == document
    assert recomputed == []
    assert sorted(job["job"] for job in document["jobs"]) == sorted(JOBS)


def test_the_reader_leaves_catalogs_it_does_not_read_to_the_catalog(tmp_path: Path) -> None:
    # GIVEN a SQLite file not there yet, in memory, another driver, several hosts
    missing = tmp_path / "missing.sqlite3"
    for url in (
        f"sqlite:///{missing}",
        "sqlite:///:memory:",
        f"sqlite:///{missing}?mode=ro",
        "mysql+pymysql://replica@db/replica",
        "postgresql+psycopg2://replica@db/replica",
        "postgresql+psycopg://replica@db-a:5432,db-b:5432/replica",
    ):
        # WHEN the reader is asked THEN it declines (the catalog's path migrates, creates or refuses)
        with open_summary_reader(url) as reader:
            assert reader is None, url
    assert not missing.exists()  # and it created nothing

    # GIVEN a SQLite catalog at an older schema revision, and one that is no catalog
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(older) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('0001')")
    (tmp_path / "empty.sqlite3").touch()
    for path in (older, tmp_path / "empty.sqlite3"):
        with open_summary_reader(f"sqlite:///{path}") as reader:
            assert reader is None, path


def test_a_missing_sqlite_catalog_is_never_created_even_if_it_goes_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a catalog file seen by the reader's check, then removed before it connects
    missing = tmp_path / "gone.sqlite3"
    monkeypatch.setattr(Path, "is_file", lambda path: True)
    # WHEN the reader is asked THEN it declines, as for a file never there, and creates nothing
    with open_summary_reader(f"sqlite:///{missing}") as reader:
        assert reader is None
    assert not missing.exists()


def test_the_reader_opens_the_sqlite_file_sqlalchemy_opens(tmp_path: Path) -> None:
    # GIVEN a catalog whose path is percent-encoded in its URL, as SQLAlchemy decodes it
    url = f"sqlite:///{tmp_path}/my%20catalog.sqlite3"
    open_catalog(url).kw["bind"].dispose()
    assert (tmp_path / "my catalog.sqlite3").is_file()
    # WHEN the reader is asked THEN it reads that file
    with open_summary_reader(url) as reader:
        assert reader is not None
        assert reader.leader() is None


# URLs whose psycopg parameters the reader derives as SQLAlchemy's psycopg dialect does: the host as written (a
# socket folder percent-encoded, capitals), user, password and database percent-decoded, empty parts and blank
# options left out, the query's options winning.
SAME_AS_SQLALCHEMY = (
    "postgresql+psycopg://MyHost/replica",
    "postgresql+psycopg://replica@%2FVar%2Frun/replica",
    "postgresql+psycopg://re%40der:p%2Fss%40w%3Ard@DB.example:6543/re%20plica?sslmode=require&application_name=st",
    "postgresql+psycopg://replica:@db/replica",
    "postgresql+psycopg://app:p@ss@db/replica",
    "postgresql+psycopg://[::1]:5433/replica",
    "postgresql+psycopg:///replica?host=/run/postgresql&port=5433",
    "postgresql+psycopg://db:5432/replica?host=Other&sslmode=",
    "postgresql+psycopg://db/re#plica",
    "postgresql+psycopg://",
)
# URLs SQLAlchemy refuses or reads as several hosts: left to the catalog's path.
DECLINED = (
    "postgresql+psycopg://db:notaport/replica",
    "postgresql+psycopg://db:/replica",
    "postgresql+psycopg://replica@db-a:5432,db-b:5432/replica",
    "postgresql+psycopg:///replica?host=db-a:5432&host=db-b:5432",
    "postgresql+psycopg:///replica?host=db-a,db-b&port=5432,5433",
    "postgresql+psycopg:///replica?port=any",
)


@pytest.mark.parametrize("url", SAME_AS_SQLALCHEMY)
def test_psycopg_parameters_are_what_sqlalchemys_dialect_passes(url: str) -> None:
    engine = create_engine(url)  # connects to nothing
    arguments, parameters = engine.dialect.create_connect_args(engine.url)
    parameters.pop("context", None)  # psycopg's type adapters
    assert arguments in ([], [""])  # psycopg.connect("") is psycopg.connect()
    assert _psycopg_parameters(url) == parameters


def test_psycopg_parameters_keep_the_host_and_decode_the_password() -> None:
    assert _psycopg_parameters(SAME_AS_SQLALCHEMY[2]) == {
        "host": "DB.example",
        "port": 6543,
        "user": "re@der",
        "password": "p/ss@w:rd",
        "dbname": "re plica",
        "sslmode": "require",
        "application_name": "st",
    }
    assert _psycopg_parameters(SAME_AS_SQLALCHEMY[1]) == {
        "host": "%2FVar%2Frun",
        "user": "replica",
        "dbname": "replica",
    }
    for url in DECLINED:
        assert _psycopg_parameters(url) is None, url


def _status(root: Path, url: str) -> subprocess.CompletedProcess[str]:
    """Run `replica status` on the catalog at `url`, without jobs, in `root`."""
    for folder in ("jobs", "policies", "state"):
        (root / folder).mkdir(exist_ok=True)
    return run_replica(root, "status", REPLICA_CATALOG_URL=url)


def _assert_one_line_without_password(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode != 0, result
    assert result.stdout == ""
    assert result.stderr.startswith("replica: error: catalog "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # no traceback
    assert f"cannot be used: {reason}" in result.stderr
    assert PASSWORD not in result.stderr and "s3cr%40t" not in result.stderr


def test_a_url_libpq_refuses_is_one_line_without_the_password(tmp_path: Path) -> None:
    # GIVEN a catalog URL with a password and an option libpq does not know
    url = f"{POSTGRESQL_URL_PREFIX.replace('postgres@', 'postgres:s3cr%40t@')}postgres?bogus=1"
    # WHEN status runs THEN it fails with one line naming the catalog without its password
    _assert_one_line_without_password(_status(tmp_path, url), 'invalid connection option "bogus"')


def test_a_catalog_that_fails_while_read_is_one_line_without_the_password(catalog_url: str, tmp_path: Path) -> None:
    # GIVEN a catalog at the newest schema whose leader table is gone (a read that fails), reached with a password
    # (trust authentication ignores it)
    engine = open_catalog(catalog_url).kw["bind"]
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE scheduler_leaders"))
    engine.dispose()
    url = catalog_url.replace("postgres@", "postgres:s3cr%40t@")
    # WHEN status runs THEN it fails with one line naming the catalog without its password
    result = _status(tmp_path, url)
    _assert_one_line_without_password(result, "")
    assert "scheduler_leaders" in result.stderr
