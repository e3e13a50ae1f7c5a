"""Restores for engineers under pressure: dry runs change nothing, live data is never overwritten without --force,
and even with --force the replaced data is kept aside. Runs left `running` by a killed process show as abandoned."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.repositories import init_side_by_side
from tests.e2e.sources import DirectorySource, PostgresqlSource, postgres_connect

JOB = "uploads"


@dataclass(frozen=True)
class Stores:
    """The stores of the module's three jobs."""

    uploads: DirectorySource
    database: PostgresqlSource


@pytest.fixture(scope="module")
def initialised(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """GIVEN the module's three jobs with their repositories initialised, all at once (each init is seconds of restic
    key setup): a directory of uploads, a PostgreSQL database, and a directory tree ("excludes") whose scratch
    files and cache folder are excluded."""
    uploads = DirectorySource(tmp_path_factory.mktemp("uploads-source"))
    deployment.write_job(JOB, uploads.store_config(), deployment.two_destinations("uploads"))
    database = PostgresqlSource(tmp_path_factory.mktemp("pg-restore"))
    try:
        deployment.write_job("pgrestore", database.store_config(), deployment.two_destinations("pgrestore"))
        tree = tmp_path_factory.mktemp("with-excludes")
        (tree / "keep.txt").write_text("kept")
        (tree / "scratch.tmp").write_text("excluded")
        (tree / ".cache").mkdir()
        (tree / ".cache" / "blob").write_text("excluded too")
        store = {"kind": "directory", "path": str(tree), "exclude": ["*.tmp", ".cache"]}
        deployment.write_job("excludes", store, deployment.two_destinations("excludes"))
        init_side_by_side(deployment, [JOB, "pgrestore", "excludes"])
        yield Stores(uploads, database)
    finally:
        database.cleanup()


@pytest.fixture(scope="module")
def uploads(deployment: Deployment, initialised: Stores) -> DirectorySource:
    """GIVEN a directory job with one backup."""
    assert_ok(deployment.replica("backup", JOB))
    return initialised.uploads


def test_restore_refuses_a_target_holding_data(
    deployment: Deployment, uploads: DirectorySource, tmp_path: Path
) -> None:
    target = tmp_path / "in-use"
    target.mkdir()
    (target / "precious.txt").write_text("live data")
    result = deployment.replica("restore", JOB, "--to", str(target))
    assert result.returncode == 2
    assert "refusing to overwrite" in result.stderr and "--force" in result.stderr
    assert [path.name for path in target.iterdir()] == ["precious.txt"]


def test_dry_run_prints_the_plan_and_changes_nothing(
    deployment: Deployment, uploads: DirectorySource, tmp_path: Path
) -> None:
    target = tmp_path / "new-place"
    runs_before = catalog_rows(deployment, "SELECT count(*) FROM runs")
    result = deployment.replica("restore", JOB, "--to", str(target), "--dry-run")
    assert_ok(result)
    assert "dry run, nothing changed" in result.stdout and str(target) in result.stdout
    assert "will be created" in result.stdout
    assert not target.exists()
    assert catalog_rows(deployment, "SELECT count(*) FROM runs") == runs_before


def test_force_replaces_the_target_but_keeps_the_old_data_aside(
    deployment: Deployment, uploads: DirectorySource, tmp_path: Path
) -> None:
    target = tmp_path / "in-use"
    target.mkdir()
    (target / "precious.txt").write_text("live data")
    result = deployment.replica("restore", JOB, "--to", str(target), "--force")
    assert_ok(result)
    assert uploads.contents(str(target)) == uploads.contents()
    aside = [path for path in tmp_path.iterdir() if path.name.startswith("in-use.replaced-")]
    assert len(aside) == 1 and (aside[0] / "precious.txt").read_text() == "live data"
    assert "kept as" in result.stdout
    kind, status, details = catalog_rows(deployment, "SELECT kind, status, details FROM runs ORDER BY id DESC LIMIT 1")[
        0
    ]
    assert (kind, status) == ("restore", "succeeded") and json.loads(details)["rto_seconds"] > 0


def test_restore_at_a_time_before_any_snapshot_is_refused(
    deployment: Deployment, uploads: DirectorySource, tmp_path: Path
) -> None:
    result = deployment.replica("restore", JOB, "--to", str(tmp_path / "x"), "--at", "2001-01-01T00:00:00Z")
    assert result.returncode == 2 and "no snapshot taken at or before" in result.stderr


def test_restore_at_a_time_picks_the_snapshot_of_that_moment(
    deployment: Deployment, uploads: DirectorySource, tmp_path: Path
) -> None:
    first = uploads.contents()
    moment = datetime.now(UTC)
    uploads.add_rows(3)
    assert_ok(deployment.replica("backup", JOB))
    target = tmp_path / "as-of-moment"
    assert_ok(deployment.replica("restore", JOB, "--to", str(target), "--at", moment.isoformat()))
    assert uploads.contents(str(target)) == first != uploads.contents()


def test_postgresql_restore_never_touches_an_existing_database(deployment: Deployment, initialised: Stores) -> None:
    source = initialised.database  # its databases, and those the test creates, are dropped with the fixture
    assert_ok(deployment.replica("backup", "pgrestore"))
    existing = source.restore_target(Path("."))
    with postgres_connect("postgres") as connection:
        connection.execute(f'CREATE DATABASE "{existing}"')
    with postgres_connect(existing) as connection:
        connection.execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)")
    refused = deployment.replica("restore", "pgrestore", "--to", existing)
    assert refused.returncode == 2
    assert "refusing to overwrite" in refused.stderr
    forced = deployment.replica("restore", "pgrestore", "--to", existing, "--force")
    assert_ok(forced)
    assert source.contents(existing) == source.contents()
    aside = forced.stdout.split("kept as database '", 1)[1].split("'", 1)[0]
    source.created.append(aside)
    with postgres_connect(aside) as connection:
        assert connection.execute("SELECT x FROM keep_me").fetchall() == [(42,)]
    live = deployment.replica("restore", "pgrestore", "--to", source.database, "--force")
    assert live.returncode == 2 and "live database" in live.stderr


def test_a_run_left_running_by_a_dead_process_shows_as_abandoned(
    deployment: Deployment, uploads: DirectorySource
) -> None:
    # GIVEN a run recorded as running by a process that no longer exists (killed with SIGKILL mid-backup)
    dead_pid = 2**22 + 12345
    while True:
        try:
            os.kill(dead_pid, 0)
            dead_pid += 1
        except ProcessLookupError:
            break
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    deployment.catalog.execute(
        "INSERT INTO runs (job, kind, destination, status, phase, started_at, host, pid, actor, details) "
        "VALUES (:job, 'backup', 'primary', 'running', 'backup', :started, :host, :pid, 'test', '{}')",
        job=JOB,
        started=started,
        host=socket.gethostname(),
        pid=dead_pid,
    )
    # THEN runs and status show it as abandoned, never as success
    runs = deployment.replica_json("runs", "--job", JOB)
    assert runs[0]["status"] == "abandoned"
    status = next(job for job in deployment.replica_json("status")["jobs"] if job["job"] == JOB)
    assert status["abandoned_runs"] == 1 and status["state"] != "ok"
    assert any("abandoned" in reason for reason in status["reasons"])


def test_restore_refuses_a_target_above_or_through_the_live_directory(
    deployment: Deployment, uploads: DirectorySource
) -> None:
    live = uploads.root
    for target in (live.parent, live / ".." / live.name, live / "inside"):
        result = deployment.replica("restore", JOB, "--to", str(target), "--force", "--dry-run")
        assert result.returncode == 2, target
        assert "live directory" in result.stderr


def test_excluded_files_are_left_out_of_backup_and_fingerprint_alike(
    deployment: Deployment, initialised: Stores
) -> None:
    # GIVEN a directory job excluding scratch files and a cache folder (see `initialised`)
    # WHEN it is backed up and verified
    assert_ok(deployment.replica("backup", "excludes"))
    verify = deployment.replica("verify", "excludes")
    # THEN the verification passes: restic and the fingerprint agree on what is in the snapshot
    assert_ok(verify)
    assert "1 files" in verify.stdout
