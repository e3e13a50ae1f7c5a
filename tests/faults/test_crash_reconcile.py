"""kill -9 at failpoints, then startup reconciliation: real CLI processes, real restic, moto's S3 server.

Each case arms one failpoint (`REPLICA_FAILPOINTS`, see `replica.failpoints`) in the CLI's environment, sees the
process die with SIGKILL, and then lets what sweeps in production (`run-due`, `replica reconcile`) find the dead
run and reconcile what it left in the repositories. The cases share one job and run in file order, each starting
from what the previous left: one deployment, two repositories (`restic init` is ~2.5 s each).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e import conftest as e2e_fixtures
from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import SqliteSource

# The e2e fixtures this module uses (tests/faults has no conftest of its own): moto's S3 server and a deployment.
s3_server = e2e_fixtures.s3_server
deployment = e2e_fixtures.deployment

JOB = "crashy"
KILLED = -9


@dataclass
class Scenario:
    """The job all cases share, its first verified recovery point, and the measured times to detect."""

    deployment: Deployment
    source: SqliteSource
    destinations: list[dict[str, Any]]
    baseline: str
    detect_seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def scenario(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    # GIVEN a SQLite job backed up hourly (so run-due backs it up when due, and does nothing else) into two
    # destinations, with one backup verified: the recovery point no crash may touch
    source = SqliteSource(tmp_path_factory.mktemp("crashy"))
    destinations = deployment.two_destinations("crash")
    deployment.write_job(JOB, source.store_config(), destinations, schedule={"backup": "every 1h"})
    assert_ok(deployment.replica("init", JOB))
    assert_ok(deployment.replica("backup", JOB))
    (baseline,) = snapshot_rows(deployment, "primary")
    assert_ok(deployment.replica("verify", JOB, "--snapshot", baseline))
    scenario = Scenario(deployment, source, destinations, baseline)
    yield scenario
    print("\ntime to detect (kill -> reconciled):", json.dumps(scenario.detect_seconds))


def crash(deployment: Deployment, failpoint: str, *arguments: str) -> tuple[int, float]:
    """Run the CLI with `failpoint` armed; assert that it died of SIGKILL; return the newest run's id and when the
    process was found dead (epoch seconds)."""
    result = deployment.replica(*arguments, env=deployment.environment(REPLICA_FAILPOINTS=failpoint))
    died_at = time.time()
    assert result.returncode == KILLED, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert f"kills itself at {failpoint}" in result.stderr
    ((run_id, status),) = catalog_rows(deployment, "SELECT id, status FROM runs ORDER BY id DESC LIMIT 1")
    assert status == "running"  # nothing unwound: the crash left the run as it was
    return run_id, died_at


def detect(scenario: Scenario, label: str, died_at: float, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the command that sweeps and reconciles; record how long after the kill it finished."""
    result = scenario.deployment.replica(*arguments)
    scenario.detect_seconds[label] = round(time.time() - died_at, 2)
    assert_ok(result)
    return result


def run_of(deployment: Deployment, run_id: int) -> tuple[str, str | None, str]:
    ((status, failure, kind),) = catalog_rows(deployment, f"SELECT status, failure, kind FROM runs WHERE id = {run_id}")
    return status, failure, kind


def reconcile_events(deployment: Deployment, run_id: int) -> list[tuple[str, str | None, str, str]]:
    return catalog_rows(
        deployment,
        f"SELECT outcome, snapshot, destination, detail FROM events WHERE kind = 'reconcile' AND run_id = {run_id}",
    )


def seconds_to_reconcile(deployment: Deployment, run_id: int, died_at: float) -> float:
    """Return the seconds from a kill to the newest reconcile event of the run it killed."""
    ((recorded_at,),) = catalog_rows(
        deployment, f"SELECT max(recorded_at) FROM events WHERE kind = 'reconcile' AND run_id = {run_id}"
    )
    return round(datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() - died_at, 2)


def snapshot_rows(deployment: Deployment, destination: str) -> dict[str, tuple[Any, ...]]:
    """Return a destination's unpruned catalog rows by snapshot id: (usable, unusable_reason, original_id,
    backup_run_id)."""
    rows = catalog_rows(
        deployment,
        "SELECT snapshot_id, usable, unusable_reason, original_id, backup_run_id FROM snapshots "
        f"WHERE job = '{JOB}' AND destination = '{destination}' AND pruned_at IS NULL",
    )
    return {row[0]: row[1:] for row in rows}


def stored_ids(deployment: Deployment, destination: dict[str, Any]) -> list[str]:
    """Return the short ids of the snapshots in a destination's repository, read from the bucket itself."""
    listed = deployment.s3.client().list_objects_v2(
        Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/snapshots/"
    )
    return sorted(item["Key"].rsplit("/", 1)[1][:8] for item in listed.get("Contents", []))


def sidecar_exists(deployment: Deployment, destination: dict[str, Any], snapshot_id: str) -> bool:
    key = f"{destination['prefix']}/replica/fingerprints/{snapshot_id}.json"
    listed = deployment.s3.client().list_objects_v2(Bucket=destination["bucket"], Prefix=key)
    return bool(listed.get("Contents"))


def test_backups_killed_at_each_failpoint_are_abandoned_their_snapshots_adopted_unusable_and_the_next_backup_works(
    scenario: Scenario,
) -> None:
    deployment, primary = scenario.deployment, scenario.destinations[0]
    stored_before = stored_ids(deployment, primary)

    # WHEN one backup dies after its run is recorded, before restic starts; one right after restic saved its
    # snapshot (the dump not yet checked); and one after the dump was checked and its fingerprint sidecar written,
    # both before the catalog recorded the snapshot
    before_upload, _ = crash(deployment, "backup-before-upload", "backup", JOB)
    assert stored_ids(deployment, primary) == stored_before  # no snapshot was made
    scenario.source.add_rows(20)
    after_snapshot, _ = crash(deployment, "backup-after-snapshot", "backup", JOB)
    scenario.source.add_rows(20)
    before_record, died_at = crash(deployment, "backup-before-record", "backup", JOB)
    orphans = sorted(set(stored_ids(deployment, primary)) - set(stored_before))
    assert len(orphans) == 2  # the repository holds two snapshots the catalog does not know

    # AND the next `run-due` runs (its own due backup's copy dies in turn: the next test's case)
    scenario.source.add_rows(20)
    copy_run, _ = crash(deployment, "copy-after-restic", "run-due")

    # THEN the three runs are abandoned; the first left nothing to reconcile
    for run_id in (before_upload, after_snapshot, before_record):
        assert run_of(deployment, run_id) == ("abandoned", "abandoned", "backup")
    assert reconcile_events(deployment, before_upload) == []
    # AND each snapshot of the other two is adopted as unusable, with its reason and a reconcile event naming the
    # snapshot and the run
    for run_id in (after_snapshot, before_record):
        ((outcome, snapshot, destination, detail),) = reconcile_events(deployment, run_id)
        assert (outcome, destination) == ("unusable", "primary")
        assert snapshot in orphans
        assert f"by backup run {run_id} (abandoned" in detail and "never a recovery point" in detail
    scenario.detect_seconds["backups"] = seconds_to_reconcile(deployment, before_record, died_at)
    rows = snapshot_rows(deployment, "primary")
    for orphan in orphans:
        assert rows[orphan][0] == 0  # usable = 0: never a recovery point
        assert "never a recovery point" in rows[orphan][1]
    # AND the sidecar the third crash left does not make its snapshot a recovery point
    (checked,) = [event[1] for event in reconcile_events(deployment, before_record)]
    assert sidecar_exists(deployment, primary, checked)
    refused = deployment.replica("verify", JOB, "--snapshot", checked)
    assert refused.returncode != 0 and "is not a recovery point" in refused.stderr
    # AND run-due then ran the due backup (a crash makes it due at once), which succeeded: a usable snapshot
    ((backup_status, newest),) = catalog_rows(
        deployment,
        f"SELECT r.status, r.snapshot_id FROM runs r JOIN runs c ON c.parent_run_id = r.id WHERE c.id = {copy_run}",
    )
    assert backup_status == "succeeded" and newest not in orphans
    assert rows[newest][0] == 1


def test_a_copy_killed_after_restic_copied_is_adopted_as_its_original_only_when_proven_identical(
    scenario: Scenario,
) -> None:
    deployment, offsite = scenario.deployment, scenario.destinations[1]

    # GIVEN the copy that died after `restic copy` saved it in the offsite destination, before the catalog
    # recorded it (the previous test's run-due)
    ((copy_run, parent, original),) = catalog_rows(
        deployment,
        "SELECT c.id, r.id, r.snapshot_id FROM runs c JOIN runs r ON c.parent_run_id = r.id "
        "WHERE c.kind = 'copy' AND c.status = 'running'",
    )
    (copied,) = set(stored_ids(deployment, offsite)) - set(snapshot_rows(deployment, "offsite"))
    died_at = time.time()

    # WHEN `replica reconcile` runs
    result = detect(scenario, "copy-after-restic", died_at, "reconcile", JOB)

    # THEN the copy run is abandoned, and the copy is recorded as the usable copy of its original (same root tree),
    # with its original's fingerprint sidecar, by a reconcile event naming the backup run whose tag it carries
    assert f"run {copy_run} (copy of '{JOB}') was left running by a dead process: marked abandoned" in result.stdout
    assert run_of(deployment, copy_run) == ("abandoned", "abandoned", "copy")
    ((outcome, snapshot, destination, detail),) = reconcile_events(deployment, parent)
    assert (outcome, snapshot, destination) == ("adopted", copied, "offsite")
    assert f"copy of {original} (same root tree)" in detail
    assert f"snapshot {copied} adopted" in result.stdout
    usable, reason, original_id, backup_run_id = snapshot_rows(deployment, "offsite")[copied]
    assert (usable, reason, original_id, backup_run_id) == (1, None, original, parent)
    assert sidecar_exists(deployment, offsite, copied)


def test_snapshots_removed_by_a_prune_killed_before_its_catalog_commit_are_marked_pruned(scenario: Scenario) -> None:
    deployment, primary = scenario.deployment, scenario.destinations[0]
    unusable = [snapshot_id for snapshot_id, row in snapshot_rows(deployment, "primary").items() if not row[0]]
    assert len(unusable) == 2

    # WHEN a prune of the primary (retention removes unusable snapshots: the baseline is verified there) dies after
    # restic forgot them, before the catalog recorded it
    prune_run, died_at = crash(deployment, "prune-after-forget", "prune", JOB, "--destination", "primary")
    assert not set(unusable) & set(stored_ids(deployment, primary))
    assert set(snapshot_rows(deployment, "primary")) >= set(unusable)  # the catalog still lists them

    # AND `replica reconcile` runs
    detect(scenario, "prune-after-forget", died_at, "reconcile", JOB)

    # THEN the prune run is abandoned and exactly those rows are marked pruned by it, each with a reconcile event
    assert run_of(deployment, prune_run) == ("abandoned", "abandoned", "prune")
    assert sorted(event[1] for event in reconcile_events(deployment, prune_run) if event[0] == "pruned") == sorted(
        unusable
    )
    pruned = catalog_rows(deployment, f"SELECT snapshot_id FROM snapshots WHERE prune_run_id = {prune_run}")
    assert sorted(row[0] for row in pruned) == sorted(unusable)
    assert scenario.baseline in snapshot_rows(deployment, "primary")


def test_after_every_crash_the_first_recovery_point_still_verifies_and_nothing_is_left_running(
    scenario: Scenario,
) -> None:
    deployment = scenario.deployment

    # WHEN the first verified snapshot is verified again
    result = deployment.replica("verify", JOB, "--snapshot", scenario.baseline)

    # THEN it restores to its backup-time fingerprint: no crash touched it
    assert_ok(result)
    # AND no run is left running, and every run the failpoints killed ended `abandoned`
    assert catalog_rows(deployment, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    killed = catalog_rows(deployment, "SELECT status, failure FROM runs WHERE status = 'abandoned'")
    assert killed == [("abandoned", "abandoned")] * 5
