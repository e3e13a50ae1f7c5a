"""The core promise, for every store kind: back up, copy, verify with a measured RTO, restore identical data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import Source, databases_like, make_source

STORE_KINDS = ["directory", "sqlite", "postgresql"]


@pytest.fixture(scope="module", params=STORE_KINDS)
def protected(
    request: pytest.FixtureRequest, deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Source]]:
    """GIVEN a store of each kind with data, a job with two destinations, and its repositories initialised."""
    kind = request.param
    source = make_source(kind, tmp_path_factory.mktemp(f"source-{kind}"))
    job = f"protect-{kind}"
    deployment.write_job(job, source.store_config(), deployment.two_destinations(kind))
    assert_ok(deployment.replica("init", job))
    yield job, source
    source.cleanup()


def test_backup_copies_verifies_and_restores_identical_data(
    deployment: Deployment, protected: tuple[str, Source], tmp_path: Path
) -> None:
    job, source = protected
    # WHEN the job is backed up
    backup = deployment.replica("backup", job)
    assert_ok(backup)
    assert "copy to 'offsite': snapshot" in backup.stdout
    snapshots = deployment.replica_json("snapshots", job)
    assert {row["destination"] for row in snapshots} == {"primary", "offsite"}
    primary_id = next(row["snapshot_id"] for row in snapshots if row["destination"] == "primary")
    offsite = next(row for row in snapshots if row["destination"] == "offsite")
    assert offsite["original_id"] == primary_id and offsite["snapshot_id"] != primary_id

    # THEN both destinations verify, each with a measured RTO
    for destination in ("primary", "offsite"):
        verify = deployment.replica("verify", job, "--destination", destination)
        assert_ok(verify)
        assert "PASSED" in verify.stdout and "measured RTO" in verify.stdout
        assert "[ok  ] fingerprint" in verify.stdout and "[ok  ] integrity" in verify.stdout
    rtos = catalog_rows(
        deployment, f"SELECT details FROM runs WHERE job = '{job}' AND kind = 'verify' AND status = 'succeeded'"
    )
    assert len(rtos) == 2 and all('"rto_seconds": ' in row[0] for row in rtos)

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
    assert databases_like("replica_verify_%") == []


def test_old_snapshot_verifies_against_its_own_fingerprint(
    deployment: Deployment, protected: tuple[str, Source]
) -> None:
    job, source = protected
    # GIVEN a backup, after which the live store loses data
    assert_ok(deployment.replica("backup", job))
    old_snapshot = next(
        row["snapshot_id"] for row in deployment.replica_json("snapshots", job) if row["destination"] == "primary"
    )
    source.delete_some()
    source.add_rows(10)
    assert_ok(deployment.replica("backup", job))
    # WHEN the old snapshot is verified
    verify = deployment.replica("verify", job, "--snapshot", old_snapshot)
    # THEN it passes: it is compared with the fingerprint taken when it was made, not with the live store
    assert_ok(verify)
    assert f"snapshot {old_snapshot}" in verify.stdout
