"""The core promise, for every store kind: back up, copy, verify with a measured RTO, restore identical data."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.repositories import init_side_by_side
from tests.e2e.sources import Source, databases_like, make_source

STORE_KINDS = ["directory", "sqlite", "postgresql", "mariadb", "redis"]
# The programs each kind's backup, verify and restore start with credentials at hand (besides restic).
TOOLS = {
    "directory": set(),
    "sqlite": set(),
    "postgresql": {"pg_dump", "pg_restore"},
    "mariadb": {"mariadb-dump", "mariadb"},
    "redis": {"redis-cli", "redis-server"},
}


@pytest.fixture(scope="module")
def initialised(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Source]]:
    """GIVEN a store of each kind with data, a job with two destinations for each, and their repositories
    initialised (all five jobs' inits at once: each is seconds of restic key setup)."""
    sources: dict[str, Source] = {}
    try:
        for kind in STORE_KINDS:
            sources[kind] = make_source(kind, tmp_path_factory.mktemp(f"source-{kind}"))
            deployment.write_job(
                f"protect-{kind}", sources[kind].store_config(), deployment.two_destinations(kind), canary=True
            )
        init_side_by_side(deployment, [f"protect-{kind}" for kind in STORE_KINDS])
        yield sources
    finally:
        for source in sources.values():
            source.cleanup()


@pytest.fixture(scope="module", params=STORE_KINDS)
def protected(request: pytest.FixtureRequest, initialised: dict[str, Source]) -> tuple[str, Source]:
    """The job and the store of one kind."""
    kind = request.param
    return f"protect-{kind}", initialised[kind]


@dataclass(frozen=True)
class FirstBackup:
    """The job's first backup: the CLI's outcome, the snapshots recorded after it and when its run ran."""

    result: subprocess.CompletedProcess[str]
    snapshots: list[dict[str, Any]]
    started_at: str
    finished_at: str


@pytest.fixture(scope="module")
def first_backup(deployment: Deployment, protected: tuple[str, Source]) -> FirstBackup:
    """WHEN the job is backed up: once per store kind, read by both tests (a backup and its copy cost seconds)."""
    job, _ = protected
    result = deployment.replica("backup", job)
    snapshots = deployment.replica_json("snapshots", job) if result.returncode == 0 else []
    runs = catalog_rows(
        deployment,
        f"SELECT started_at, finished_at FROM runs WHERE job = '{job}' AND kind = 'backup' ORDER BY id DESC LIMIT 1",
    )
    started_at, finished_at = runs[0] if runs else ("", "")
    return FirstBackup(result, snapshots, started_at, finished_at)


def test_backup_copies_verifies_and_restores_identical_data(
    deployment: Deployment, protected: tuple[str, Source], first_backup: FirstBackup, tmp_path: Path
) -> None:
    job, source = protected
    # WHEN the job is backed up (first_backup)
    backup = first_backup.result
    assert_ok(backup)
    assert "copy to 'offsite': snapshot" in backup.stdout
    snapshots = first_backup.snapshots
    assert {row["destination"] for row in snapshots} == {"primary", "offsite"}
    primary_id = next(row["snapshot_id"] for row in snapshots if row["destination"] == "primary")
    offsite = next(row for row in snapshots if row["destination"] == "offsite")
    assert offsite["original_id"] == primary_id and offsite["snapshot_id"] != primary_id

    # THEN the recovery point verifies in both destinations, each with a measured RTO, and the copies are equivalent
    verify = deployment.replica("verify", job, "--all-destinations")
    assert_ok(verify)
    assert verify.stdout.count("PASSED") == 2 and verify.stdout.count("measured RTO") == 2
    assert verify.stdout.count("[ok  ] fingerprint") == 2 and verify.stdout.count("[ok  ] integrity") == 2
    assert verify.stdout.count("[ok  ] canary") == 2
    assert "the copies are equivalent" in verify.stdout
    rtos = catalog_rows(
        deployment, f"SELECT details FROM runs WHERE job = '{job}' AND kind = 'verify' AND status = 'succeeded'"
    )
    assert len(rtos) == 2
    for details in (json.loads(row[0]) for row in rtos):
        # The RTO includes the data checks, whose own share is recorded beside it.
        assert 0 < details["data_checks_seconds"] < details["rto_seconds"]

    # AND a restore to a new target gives identical data
    target = source.restore_target(tmp_path)
    restore = deployment.replica("restore", job, "--to", target)
    assert_ok(restore)
    assert source.contents(target) == source.contents()

    # AND status shows a verified recovery point within the objectives
    status = deployment.replica_json("status")
    row = next(entry for entry in status["jobs"] if entry["job"] == job)
    assert row["state"] == "ok", row["reasons"]
    assert 0 <= row["rpo_seconds"] < 600
    assert row["rto_seconds"] > 0
    assert all(d["newest_verified_snapshot"] for d in row["destinations"])

    # AND no scratch target was left behind
    assert not list((deployment.state_dir / "scratch").glob("verify-*"))
    assert databases_like(f"replica_verify_{job.replace('-', '_')}%") == []
    # AND restic and the store's tools ran through the recording shims: the deployment's teardown then finds no
    # secret on any of their command lines (the PostgreSQL password, the repository password, the S3 key)
    assert {"restic", *TOOLS[source.kind]} <= deployment.recorders.programs()


def test_old_snapshot_verifies_against_its_own_fingerprint_and_canary(
    deployment: Deployment, protected: tuple[str, Source], first_backup: FirstBackup
) -> None:
    job, source = protected
    # GIVEN a backup (first_backup), after which the live store loses some data and gains other data, and is backed
    # up again
    assert_ok(first_backup.result)
    started, finished = first_backup.started_at, first_backup.finished_at
    old_snapshot = next(row["snapshot_id"] for row in first_backup.snapshots if row["destination"] == "primary")
    later_write = datetime.now(UTC)
    source.delete_some()
    source.add_rows(10)
    assert_ok(deployment.replica("backup", job))
    # WHEN the old snapshot is verified
    verify = deployment.replica("verify", job, "--snapshot", old_snapshot)
    # THEN it passes: it is compared with the fingerprint taken when it was made, not with the live store
    assert_ok(verify)
    assert f"snapshot {old_snapshot}" in verify.stdout and "[ok  ] canary" in verify.stdout
    # AND its restored canary is its own backup's: written within that run, before the later write
    details = json.loads(
        catalog_rows(
            deployment, f"SELECT details FROM runs WHERE job = '{job}' AND kind = 'verify' ORDER BY id DESC LIMIT 1"
        )[0][0]
    )
    canary_at = datetime.fromisoformat(details["canary_at"])
    assert as_utc(started) <= canary_at <= as_utc(finished) < later_write
    # AND status measures the data-loss window from that canary: it covers the later write
    row = next(entry for entry in deployment.replica_json("status")["jobs"] if entry["job"] == job)
    primary = next(d for d in row["destinations"] if d["name"] == "primary")
    assert primary["newest_verified_snapshot"] == old_snapshot
    assert datetime.fromisoformat(primary["canary_recovery_point"]) == canary_at
    assert primary["data_loss_window_seconds"] >= (datetime.now(UTC) - later_write).total_seconds()


def as_utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
