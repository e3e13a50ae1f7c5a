"""The catalog on real SQLite files: schema migration, refusal of unknown revisions, records written and read back."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from replica.catalog.database import MIGRATIONS_PATH, open_catalog
from replica.catalog.records import FAILED, RUNNING, SUCCEEDED, Catalog, CheckOutcome
from replica.errors import CatalogError

TABLES = {"runs", "snapshots", "check_results", "reports"}


def head_revision() -> str:
    """Return the newest migration revision shipped with replica."""
    head = ScriptDirectory(str(MIGRATIONS_PATH)).get_current_head()
    assert head is not None
    return head


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def stored_revisions(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))


# Schema ------------------------------------------------------------------------------------------------------------


def test_open_catalog_creates_the_schema_on_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "catalog.sqlite3"

    open_catalog(f"sqlite:///{path}")

    assert path.is_file()
    assert stored_revisions(path) == [head_revision()]
    assert table_names(path) >= TABLES | {"alembic_version"}
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_open_catalog_twice_keeps_the_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    run_id = Catalog(open_catalog(url)).start_run("billing", "backup", phase="dump")

    reopened = Catalog(open_catalog(url))

    assert stored_revisions(tmp_path / "catalog.sqlite3") == [head_revision()]
    run = reopened.run(run_id)
    assert run is not None
    assert run.job == "billing"


def test_open_catalog_refuses_an_unknown_revision(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('ffff')")

    with pytest.raises(CatalogError, match="'ffff'") as info:
        open_catalog(f"sqlite:///{path}")

    assert "upgrade replica" in str(info.value)
    assert stored_revisions(path) == ["ffff"], "an unknown schema must be left untouched"
    assert not table_names(path) & TABLES


def test_open_catalog_reports_an_unusable_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"this is not a database, " * 200)

    with pytest.raises(CatalogError, match="cannot be used") as info:
        open_catalog(f"sqlite:///{path}")

    assert "\n" not in str(info.value)


# Records -----------------------------------------------------------------------------------------------------------


def test_run_lifecycle_round_trips_with_aware_times(catalog: Catalog) -> None:
    before = datetime.now(UTC)
    run_id = catalog.start_run("billing", "backup", phase="prepare", destination="primary", details={"a": 1})

    started = catalog.run(run_id)
    assert started is not None
    assert started.status == RUNNING
    assert started.phase == "prepare"
    assert started.finished_at is None
    assert started.started_at.tzinfo is not None
    assert started.started_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= started.started_at <= datetime.now(UTC)

    catalog.set_phase(run_id, "dump", bytes_read=42)
    catalog.finish_run(run_id, succeeded=True, snapshot_id="abc123", seconds=1.5)

    finished = catalog.run(run_id)
    assert finished is not None
    assert finished.status == SUCCEEDED
    assert finished.phase == "dump"
    assert finished.snapshot_id == "abc123"
    assert finished.error is None
    assert finished.details == {"a": 1, "bytes_read": 42, "seconds": 1.5}
    assert finished.finished_at is not None
    assert finished.finished_at.tzinfo is not None
    assert finished.finished_at >= finished.started_at


def test_failed_run_keeps_its_phase_and_the_first_line_of_the_error(catalog: Catalog) -> None:
    run_id = catalog.start_run("billing", "backup", phase="prepare")
    catalog.set_phase(run_id, "dump")

    catalog.finish_run(run_id, succeeded=False, error="pg_dump exited with code 1: server closed\nTraceback...\n  x")

    run = catalog.run(run_id)
    assert run is not None
    assert run.status == FAILED
    assert run.phase == "dump"
    assert run.error == "pg_dump exited with code 1: server closed"


def test_failed_run_error_is_cut_to_the_column_size(catalog: Catalog) -> None:
    run_id = catalog.start_run("billing", "backup", phase="dump")

    catalog.finish_run(run_id, succeeded=False, error="x" * 2000 + "\nsecond line")

    run = catalog.run(run_id)
    assert run is not None
    assert run.error == "x" * 500


def test_failed_run_error_skips_leading_blank_lines(catalog: Catalog) -> None:
    # A message that starts with a newline must not leave a failed run with an empty error.
    run_id = catalog.start_run("billing", "backup", phase="dump")

    catalog.finish_run(run_id, succeeded=False, error="\n  restic: repository is locked\nmore")

    run = catalog.run(run_id)
    assert run is not None
    assert run.error == "restic: repository is locked"


def test_runs_are_filtered_and_newest_first(catalog: Catalog) -> None:
    first = catalog.start_run("billing", "backup", phase="dump")
    second = catalog.start_run("billing", "verify", phase="restore", parent_run_id=first)
    third = catalog.start_run("uploads", "backup", phase="dump")

    assert [run.id for run in catalog.runs()] == [third, second, first]
    assert [run.id for run in catalog.runs(job="billing")] == [second, first]
    assert [run.id for run in catalog.runs(job="billing", kind="backup")] == [first]
    assert [run.id for run in catalog.runs(limit=1)] == [third]
    verify = catalog.run(second)
    assert verify is not None
    assert verify.parent_run_id == first
    assert catalog.run(9999) is None


def test_snapshots_round_trip_in_utc_newest_recovery_point_first(catalog: Catalog) -> None:
    run_id = catalog.start_run("billing", "backup", phase="dump")
    plus_two = timezone(timedelta(hours=2))
    # 10:00+02:00 is 08:00 UTC, older than 09:00 UTC even though its wall-clock reads later.
    older = datetime(2026, 11, 20, 10, 0, tzinfo=plus_two)
    newer = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    fingerprint = {"tables": {"public.orders": {"rows": 120000, "digest": "00ff"}}}
    for snapshot_id, taken_at in (("older", older), ("newer", newer)):
        catalog.add_snapshot(
            job="billing",
            destination="primary",
            snapshot_id=snapshot_id,
            original_id=snapshot_id,
            backup_run_id=run_id,
            taken_at=taken_at,
            bytes_processed=1000,
            bytes_added=10,
            stored_name="/billing.pgdump",
            fingerprint=fingerprint,
        )
    catalog.add_snapshot(
        job="billing",
        destination="offsite",
        snapshot_id="copy",
        original_id="newer",
        backup_run_id=run_id,
        taken_at=newer,
        bytes_processed=1000,
        bytes_added=0,
        stored_name="/billing.pgdump",
        fingerprint=fingerprint,
    )

    primary = catalog.snapshots("billing", "primary")

    assert [snapshot.snapshot_id for snapshot in primary] == ["newer", "older"]
    assert primary[1].taken_at == older
    assert primary[1].taken_at.utcoffset() == timedelta(0)
    assert primary[1].taken_at.hour == 8
    assert primary[0].fingerprint == fingerprint
    assert primary[0].usable is True
    assert primary[0].created_at.tzinfo is not None
    assert {snapshot.snapshot_id for snapshot in catalog.snapshots("billing")} == {"newer", "older", "copy"}
    assert catalog.snapshots("uploads") == []


def test_checks_come_back_in_the_order_they_ran(catalog: Catalog) -> None:
    run_id = catalog.start_run("billing", "verify", phase="check")
    other_run = catalog.start_run("billing", "verify", phase="check")
    catalog.add_checks(
        run_id,
        [
            CheckOutcome("repository", True, True, "restic check: no errors", 1.25),
            CheckOutcome("fingerprint", False, True, "row count of public.orders: expected 120000, restored 119874"),
            CheckOutcome("integrity", True, False, "ok"),
        ],
    )
    catalog.add_checks(other_run, [CheckOutcome("repository", True, True, "ok")])

    checks = catalog.checks(run_id)

    assert [(check.name, check.passed, check.critical) for check in checks] == [
        ("repository", True, True),
        ("fingerprint", False, True),
        ("integrity", True, False),
    ]
    assert checks[0].duration_seconds == 1.25
    assert checks[1].detail == "row count of public.orders: expected 120000, restored 119874"


def test_reports_round_trip(catalog: Catalog) -> None:
    run_id = catalog.start_run("billing", "verify", phase="report")
    body = {"lost": {"public.orders": 126}, "note": "Zürich"}

    report_id = catalog.add_report(
        job="billing", run_id=run_id, title="Data loss in billing", markdown_path="", json_path="", body=body
    )
    catalog.update_report_paths(report_id, markdown_path="/r/1.md", json_path="/r/1.json", body={**body, "id": 1})

    report = catalog.report(report_id)
    assert report is not None
    assert report.title == "Data loss in billing"
    assert (report.markdown_path, report.json_path) == ("/r/1.md", "/r/1.json")
    assert report.body == {**body, "id": 1}
    assert report.created_at.tzinfo is not None
    assert [item.id for item in catalog.reports("billing")] == [report_id]
    assert catalog.reports("uploads") == []
    assert catalog.report(report_id + 1) is None


def test_processes_starting_together_on_a_fresh_catalog_migrate_it_once(tmp_path: Path) -> None:
    """GIVEN no catalog yet WHEN eight processes open it at the same moment (a daemon and cron's run-due starting
    together on a fresh host) THEN every one succeeds and the schema is created once."""
    import subprocess
    import sys

    path = tmp_path / "catalog.sqlite3"
    start = tmp_path / "start"
    script = (
        "import sys, time, pathlib\n"
        "from replica.catalog.database import open_catalog\n"
        "from replica.catalog.records import Catalog\n"
        f"while not pathlib.Path({str(start)!r}).exists(): time.sleep(0.005)\n"
        f"Catalog(open_catalog('sqlite:///{path}')).start_run('billing', 'backup', phase='dump')\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(1.0)  # let every interpreter start and wait at the line
    start.touch()
    errors = [process.communicate(timeout=60)[1] for process in processes]

    assert [process.returncode for process in processes] == [0] * 8, errors
    assert stored_revisions(path) == [head_revision()]
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (8,)
