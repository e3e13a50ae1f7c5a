"""`replica status` reads per-job summaries (replica.catalog.summaries): facts cached per job and revision, the
revision bumped by database triggers in every transaction that changes a job's runs, snapshots or check results.
The cached path must give exactly what the computation from the runs gives (replica.catalog.latest), on SQLite and
PostgreSQL, for varied histories and after every kind of write, recomputing only the jobs that were written."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, delete, func, inspect, select, text, update

from replica.actions.context import Context
from replica.actions.status import collect_status, job_document, job_view
from replica.catalog.database import SQLITE_BUSY_TIMEOUT_MILLISECONDS, open_catalog
from replica.catalog.latest import LatestRecords
from replica.catalog.models import CheckResult, JobRevision, JobStatusCache, Run, Snapshot
from replica.catalog.records import FAILED, Catalog, CheckOutcome
from replica.catalog.summaries import FACTS_FORMAT, decode_facts, encode_facts
from tests.integration.conftest import unique_name
from tests.integration.test_status_grouped import (
    JOBS,
    History,
    context_with_history,
    snapshot_ids,
    write_history,
)
from tests.support.catalogs import POSTGRESQL_ADMIN, migrate


@pytest.fixture
def context(catalog_url: str, tmp_path: Path) -> Iterator[Context]:
    """A context over six job files and a catalog holding `write_history`'s varied histories."""
    context = context_with_history(catalog_url, tmp_path)
    yield context
    context.catalog.sessions.kw["bind"].dispose()


def documents_both_ways(context: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return status's job documents, and the same built from facts computed from the runs (at the same time)."""
    document = collect_status(context)
    now = datetime.fromisoformat(document["generated_at"])
    configuration = context.configuration
    computed = context.catalog.compute_latest_records(sorted(configuration.jobs))
    expected = []
    for name in sorted(configuration.jobs):
        outline = configuration.outlines[name]
        view = job_view(outline, configuration.policies[outline.policy], computed[name], now)
        expected.append(job_document(view, now))
    return document["jobs"], expected


def assert_cache_matches(catalog: Catalog) -> None:
    everything = [*JOBS, "unknown"]
    assert catalog.latest_records(everything) == catalog.compute_latest_records(everything)


def test_status_from_summaries_equals_the_computation_and_recomputes_only_written_jobs(
    context: Context, recomputed: list[str]
) -> None:
    catalog = context.catalog
    history = History(catalog)
    history.counter = 1_000  # snapshot ids apart from write_history's

    # WHEN status runs on a cold cache THEN its documents are those computed from the runs, every job recomputed
    documents, expected = documents_both_ways(context)
    assert documents == expected
    assert sorted(recomputed) == sorted(JOBS)
    with catalog.sessions() as session:
        assert set(session.scalars(select(JobStatusCache.job))) == set(JOBS)
    # and a second run recomputes nothing
    recomputed.clear()
    documents, expected = documents_both_ways(context)
    assert documents == expected
    assert recomputed == []

    # WHEN each kind of write happens THEN only the written job is recomputed, and the facts still agree
    def after(write: Callable[[], object], jobs: set[str]) -> None:
        recomputed.clear()
        write()
        documents, expected = documents_both_ways(context)
        assert documents == expected
        assert set(recomputed) == jobs, write
        assert_cache_matches(catalog)

    beta_primary = snapshot_ids(catalog, "beta", "primary")
    after(lambda: history.backup("gamma", 30), {"gamma"})  # first backup and copy of a job with no history
    after(lambda: history.verify("gamma", "primary", snapshot_ids(catalog, "gamma", "primary")[0]), {"gamma"})
    after(lambda: history.verify("beta", "primary", beta_primary[1], status=FAILED), {"beta"})
    after(lambda: history.backup("omega", 31, copy=False), {"omega"})  # a failed copy
    after(lambda: history.backup("alpha", 32, succeeded=False), {"alpha"})  # a failed backup
    after(lambda: history.prune("alpha", "offsite", keep=1), {"alpha"})  # pruned snapshots
    running = catalog.start_run("epsilon", "verify", phase="probe", destination="primary")
    after(lambda: catalog.set_phase(running, "restore", restored=True), {"epsilon"})
    after(lambda: catalog.add_checks(running, [CheckOutcome("restore", True, True, "restored")]), {"epsilon"})
    after(lambda: catalog.record_skipped("delta", "backup", "job 'delta' is busy"), {"delta"})
    # A run left `running` by a dead process, then swept as abandoned; this process's runs interrupted.
    after(lambda: catalog.mark_abandoned(host=socket.gethostname(), is_alive=lambda pid: False), {"delta", "epsilon"})
    catalog.start_run("omega", "backup", phase="backup", destination="primary")
    after(lambda: catalog.interrupt_running(host=socket.gethostname(), pid=os.getpid(), reason="stopped"), {"omega"})

    # Writes outside the catalog's methods: a snapshot marked unusable, a run moved, check results deleted.
    def unusable() -> None:
        with catalog.sessions.begin() as session:
            session.execute(update(Snapshot).where(Snapshot.job == "gamma").values(usable=False))

    def rename() -> None:
        with catalog.sessions.begin() as session:
            session.execute(update(Run).where(Run.job == "omega", Run.kind == "init").values(job="beta"))

    def checks_deleted() -> None:
        with catalog.sessions.begin() as session:
            session.execute(delete(CheckResult).where(CheckResult.run_id == running))

    after(unusable, {"gamma"})
    after(rename, {"omega", "beta"})
    after(checks_deleted, {"epsilon"})


def test_a_write_the_triggers_missed_would_show_as_a_difference(context: Context, catalog_url: str) -> None:
    # GIVEN a warm cache, and the trigger of snapshot updates dropped (what a forgotten write path would be)
    catalog = context.catalog
    assert_cache_matches(catalog)
    with catalog.sessions.begin() as session:
        if catalog_url.startswith("sqlite"):
            session.execute(text("DROP TRIGGER snapshots_bump_job_revision_update"))
        else:
            session.execute(text("DROP TRIGGER snapshots_bump_job_revision ON snapshots"))
        session.execute(update(Snapshot).where(Snapshot.job == "alpha").values(usable=False))

    # WHEN the cached facts are read THEN they are stale, and the comparison the tests rely on sees it
    computed = catalog.compute_latest_records(["alpha"])["alpha"]
    assert computed.newest_points == {}
    assert catalog.latest_records(["alpha"])["alpha"] != computed


def test_facts_survive_their_encoding(context: Context) -> None:
    # GIVEN the facts of every job of the varied histories (points, canaries, running runs, no history)
    facts = context.catalog.compute_latest_records([*JOBS, "unknown"])
    assert any(latest.newest_points for latest in facts.values())
    assert any(latest.running for latest in facts.values())

    # WHEN encoded and decoded THEN they are equal, and another format is not decoded
    for latest in facts.values():
        assert decode_facts(encode_facts(latest)) == latest
    assert decode_facts(encode_facts(LatestRecords()).replace(f"[{FACTS_FORMAT},", "[1,", 1)) is None


def test_a_damaged_cache_row_is_recomputed(context: Context, recomputed: list[str]) -> None:
    # GIVEN a warm cache, then two rows damaged at their current revision (not JSON; JSON of another shape)
    catalog = context.catalog
    assert_cache_matches(catalog)
    with catalog.sessions.begin() as session:
        session.execute(update(JobStatusCache).where(JobStatusCache.job == "alpha").values(facts="{not json"))
        session.execute(
            update(JobStatusCache).where(JobStatusCache.job == "beta").values(facts=f'[{FACTS_FORMAT}, "short"]')
        )
    recomputed.clear()

    # WHEN status reads them THEN exactly those two are recomputed, and every job's facts are right
    assert_cache_matches(catalog)
    assert sorted(recomputed) == ["alpha", "beta"]


def test_status_on_a_catalog_it_may_only_read_computes_the_facts_without_storing_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a PostgreSQL catalog with history, then opened by a session that may only read (as monitoring may)
    name = unique_name("replica_status_ro")
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        writer = Catalog(open_catalog(url))
        write_history(writer)
        expected = writer.compute_latest_records([*JOBS])
        writer.sessions.kw["bind"].dispose()
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        reader = Catalog(open_catalog(url))

        # WHEN status reads the facts THEN they are right, not stored, and the reason is logged
        assert reader.latest_records([*JOBS]) == expected
        with reader.sessions() as session:
            assert session.scalar(select(func.count()).select_from(JobStatusCache)) == 0
        assert "not stored" in caplog.text and "read-only" in caplog.text
        reader.sessions.kw["bind"].dispose()
    finally:
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_status_does_not_queue_behind_a_sqlite_writer_to_store_its_summaries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a SQLite catalog with history whose write lock another process holds (a backup recording its run)
    path = tmp_path / "catalog.sqlite3"
    writer = Catalog(open_catalog(f"sqlite:///{path}"))
    write_history(writer)
    expected = writer.compute_latest_records([*JOBS])
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        # WHEN status reads the facts THEN they are right at once: it gave up storing them instead of waiting for
        # the lock up to the catalog's 30 s busy timeout
        started = time.monotonic()
        assert writer.latest_records([*JOBS]) == expected
        assert time.monotonic() - started < 5
        assert "not stored" in caplog.text
    finally:
        holder.rollback()
        holder.close()
    # AND once the lock is gone they are stored, and the connection waits as long as before for later writes
    caplog.clear()
    assert writer.latest_records([*JOBS]) == expected
    assert "not stored" not in caplog.text
    with writer.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobStatusCache)) == len(JOBS)
        assert session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MILLISECONDS
    writer.sessions.kw["bind"].dispose()


def test_migration_0005_seeds_revisions_of_an_existing_catalog_and_downgrades(catalog_url: str) -> None:
    # GIVEN a catalog at revision 0004 with history, written by the catalog's own write path (at the newest
    # revision, whose columns today's models write, then downgraded)
    engine = create_engine(catalog_url)
    history = History(Catalog(open_catalog(catalog_url)))
    history.backup("alpha", 0)
    history.catalog.sessions.kw["bind"].dispose()
    migrate(catalog_url, command.downgrade, "0004")

    # WHEN replica opens it THEN it is migrated, the job with history at revision 1
    catalog = Catalog(open_catalog(catalog_url))
    with catalog.sessions() as session:
        assert dict(session.execute(select(JobRevision.job, JobRevision.revision)).all()) == {"alpha": 1}
    assert_cache_matches(catalog)
    # and a write bumps the revision
    history.catalog = catalog
    history.backup("alpha", 1)
    with catalog.sessions() as session:
        assert session.scalar(select(JobRevision.revision).where(JobRevision.job == "alpha")) > 1
    assert_cache_matches(catalog)
    catalog.sessions.kw["bind"].dispose()

    # WHEN downgraded to 0004 THEN the tables are gone and writes still work (no trigger left behind)
    migrate(catalog_url, command.downgrade, "0004")
    with engine.begin() as connection:
        assert not {"job_revisions", "job_status_cache"} & set(inspect(connection).get_table_names())
        connection.execute(update(Run.__table__).values(phase="done"))
        connection.execute(delete(Snapshot.__table__))
    engine.dispose()


def _time_free(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the jobs of a status document without the values that depend on when it was generated."""
    # The RTO forecast's date and predicted RTO are seen from the time of reading (its fit is compared elsewhere:
    # tests/integration/test_status_grouped.py).
    ages = ("rpo_seconds", "data_loss_window_seconds", "state", "reasons", "rto_forecast")
    jobs = []
    for job in document["jobs"]:
        kept = {key: value for key, value in job.items() if key not in ages}
        kept["destinations"] = [
            {key: value for key, value in destination.items() if key not in ages} for destination in job["destinations"]
        ]
        jobs.append(kept)
    return jobs


def test_the_command_line_prints_the_documents_as_json_dumps_would(context: Context) -> None:
    # GIVEN the varied histories, and the documents status computes in this process
    settings = context.settings
    expected = collect_status(context)
    environment = {
        "PATH": os.environ["PATH"],
        "REPLICA_STATE_DIR": str(settings.state_dir),
        "REPLICA_JOBS_DIR": str(settings.jobs_dir),
        "REPLICA_POLICIES_DIR": str(settings.policies_dir),
        "REPLICA_CATALOG_URL": settings.catalog_url,
    }

    # WHEN `replica status --json` and `replica status` run
    command = [sys.executable, "-m", "replica", "status"]
    as_json = subprocess.run([*command, "--json"], env=environment, capture_output=True, text=True, check=False)
    as_table = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)

    # THEN the JSON text is exactly json.dumps' layout of the same documents, and the table lists every job
    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    assert as_json.stdout == json.dumps(printed, indent=2, sort_keys=True, default=str) + "\n"
    assert _time_free(printed) == _time_free(expected)
    assert as_table.returncode == 0, as_table.stderr
    lines = as_table.stdout.splitlines()
    assert lines[0].startswith("JOB ") and lines[0].endswith("CANARY LOSS WINDOW")
    assert [line.split()[0] for line in lines[1 : 1 + len(JOBS)]] == sorted(JOBS)


def test_migration_0006_downgrade_keeps_the_revision_triggers(catalog_url: str) -> None:
    # GIVEN a catalog at the newest revision with a failed run and its failure state
    catalog = Catalog(open_catalog(catalog_url))
    run_id = catalog.start_run("alpha", "backup", phase="start")
    catalog.finish_run(run_id, succeeded=False, error="SlowDown", failure="throttled")
    assert catalog.runs(job="alpha", limit=1)[0].failure == "throttled"
    catalog.sessions.kw["bind"].dispose()

    # WHEN downgraded to 0005 THEN the column is gone and a write still bumps the job's revision (the triggers
    # on `runs` survived the column's removal)
    migrate(catalog_url, command.downgrade, "0005")
    engine = create_engine(catalog_url)
    with engine.begin() as connection:
        assert "failure" not in {column["name"] for column in inspect(connection).get_columns("runs")}
        before = connection.scalar(text("SELECT revision FROM job_revisions WHERE job = 'alpha'"))
        connection.execute(text("UPDATE runs SET phase = 'done' WHERE job = 'alpha'"))
        assert connection.scalar(text("SELECT revision FROM job_revisions WHERE job = 'alpha'")) == before + 1
    engine.dispose()
