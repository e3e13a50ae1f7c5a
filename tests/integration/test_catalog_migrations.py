"""The catalog's Alembic migrations on both engines it supports, SQLite and PostgreSQL (the `catalog_url` fixture
gives each test an empty catalog of each kind): an empty catalog and one written by an older release both reach the
newest revision, and the schema the migrations build is the one the models describe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from replica.catalog.database import known_revisions, open_catalog
from replica.catalog.models import Base
from replica.catalog.records import Catalog
from replica.catalog.work_slots import DUPLICATE, RUN
from tests.support.catalogs import migrate

# Rows as a release at revision 0010 wrote them: a backup run and its snapshot (the columns of that revision).
RUN_AT_0010 = (
    "INSERT INTO runs (job, kind, destination, status, phase, started_at, finished_at, host, pid, actor, details) "
    "VALUES ('billing', 'backup', 'primary', 'succeeded', 'done', :started, :finished, 'db1', 4242, 'cron', "
    """'{"bytes_added": 1024}')"""
)
SNAPSHOT_AT_0010 = (
    "INSERT INTO snapshots (job, destination, snapshot_id, original_id, backup_run_id, taken_at, bytes_processed, "
    "bytes_added, stored_name, fingerprint, usable, created_at) "
    "VALUES ('billing', 'primary', 'abc123', 'abc123', (SELECT max(id) FROM runs), :started, 2048, 1024, "
    "'billing.dump', '{}', :usable, :finished)"
)


def stored_revision(url: str) -> str:
    """Return the revision recorded in the catalog at `url`."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.scalar(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def test_an_empty_catalog_reaches_the_newest_revision_with_the_schema_of_the_models(catalog_url: str) -> None:
    # GIVEN an empty database WHEN replica opens it
    sessions = open_catalog(catalog_url)

    # THEN it is at the newest revision, and the tables, columns, indexes and constraints the migrations built are
    # exactly those the models describe (a migration that drifted from its model on one engine shows here)
    assert stored_revision(catalog_url) == known_revisions()[-1]
    engine = sessions.kw["bind"]
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_a_catalog_at_revision_0010_with_rows_reaches_the_newest_keeping_them(catalog_url: str) -> None:
    # GIVEN a catalog built by the migrations up to 0010 only, with a run and a snapshot written at that revision
    migrate(catalog_url, command.upgrade, "0010")
    finished = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    started = finished - timedelta(minutes=3)
    engine = create_engine(catalog_url)
    with engine.begin() as connection:
        assert "work_slots" not in inspect(connection).get_table_names()
        connection.execute(text(RUN_AT_0010), {"started": started, "finished": finished})
        connection.execute(text(SNAPSHOT_AT_0010), {"started": started, "finished": finished, "usable": True})
    engine.dispose()

    # WHEN replica opens it
    catalog = Catalog(open_catalog(catalog_url))

    # THEN it is at the newest revision and the old rows read back whole, without the slot they never had
    assert stored_revision(catalog_url) == known_revisions()[-1]
    (run,) = catalog.runs(job="billing")
    assert (run.job, run.status, run.started_at, run.finished_at, run.slot) == (
        "billing",
        "succeeded",
        started,
        finished,
        None,
    )
    assert run.details == {"bytes_added": 1024}
    assert [(item.snapshot_id, item.taken_at, item.usable) for item in catalog.snapshots("billing")] == [
        ("abc123", started, True)
    ]
    # AND what 0011 added works: a run continues the old ids, a slot is claimed once and done once
    slot = finished + timedelta(hours=1)
    assert catalog.start_run("billing", "backup", phase="dump") == run.id + 1
    assert catalog.work_slots.claim("billing", "backup", slot, worker="w1", covered_since=None).verdict == RUN
    catalog.work_slots.finish("billing", "backup", slot, 1, "backed up")
    again = catalog.work_slots.claim("billing", "backup", slot, worker="w2", covered_since=None)
    assert again.verdict == DUPLICATE and again.previous is not None and again.previous.startswith("done by w1")
    catalog.sessions.kw["bind"].dispose()
