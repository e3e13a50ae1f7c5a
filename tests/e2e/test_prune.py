"""Retention end to end: `replica prune` removes from every destination exactly the snapshots its decision names,
never the newest verified one, and leaves the rest restorable; `--dry-run` changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import DirectorySource

JOB = "pruned"
KEEP_ONLY_THE_NEWEST = {"keep_last": 1, "keep_hourly": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}


def stored_snapshot_ids(deployment: Deployment, destination: dict[str, Any]) -> list[str]:
    """Return the full ids of the snapshots in a destination's repository, read from the bucket itself (restic
    names each snapshot object by the hash of its content, so the key is the id)."""
    listed = deployment.s3.client().list_objects_v2(
        Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/snapshots/"
    )
    return sorted(item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", []))


def test_prune_removes_exactly_the_decided_snapshots_and_keeps_the_newest_verified_in_every_destination(
    deployment: Deployment, tmp_path: Path
) -> None:
    # GIVEN a policy keeping only the newest snapshot, three backups of a directory, and the middle one verified
    # in both destinations (so that keep_last and the "newest verified" rule protect different snapshots)
    deployment.write_policy("keep-one", rpo="1h", rto="10m", retention=KEEP_ONLY_THE_NEWEST)
    source = DirectorySource(tmp_path)
    destinations = deployment.two_destinations("prune")
    deployment.write_job(JOB, source.store_config(), destinations, policy="keep-one")
    assert_ok(deployment.replica("init", JOB))
    for _ in range(3):
        source.add_rows(5)
        assert_ok(deployment.replica("backup", JOB))
    rows = deployment.replica_json("snapshots", JOB)
    newest, middle, oldest = [row["original_id"] for row in rows if row["destination"] == "primary"]
    copy_of = {(row["destination"], row["original_id"]): row["snapshot_id"] for row in rows}
    assert_ok(deployment.replica("verify", JOB, "--all-destinations", "--snapshot", middle))
    stored_before = {destination["name"]: stored_snapshot_ids(deployment, destination) for destination in destinations}
    assert all(len(ids) == 3 for ids in stored_before.values())
    runs_before = catalog_rows(deployment, "SELECT count(*) FROM runs")

    # WHEN the decision is shown with --dry-run
    plan = deployment.replica_json("prune", JOB, "--dry-run")

    # THEN each destination keeps its newest (keep_last) and its newest verified snapshot and removes the oldest,
    # with the reasons, and nothing was recorded or removed
    assert plan["dry_run"] is True
    assert [entry["destination"] for entry in plan["destinations"]] == ["primary", "offsite"]
    for entry in plan["destinations"]:
        name = entry["destination"]
        assert entry["run_id"] is None and entry["error"] is None
        assert [(s["snapshot_id"], s["action"], s["reasons"]) for s in entry["snapshots"]] == [
            (copy_of[name, newest], "keep", ["one of the 1 newest (keep_last)"]),
            (copy_of[name, middle], "keep", ["the newest verified snapshot (never removed)"]),
            (copy_of[name, oldest], "remove", ["matched no keep rule"]),
        ]
    assert catalog_rows(deployment, "SELECT count(*) FROM runs") == runs_before
    assert {d["name"]: stored_snapshot_ids(deployment, d) for d in destinations} == stored_before

    # WHEN retention is applied
    result = deployment.replica("prune", JOB)

    # THEN the table shows every decision, and exactly the oldest snapshot is gone from both repositories
    assert_ok(result)
    for name in ("primary", "offsite"):
        assert f"destination '{name}'" in result.stdout
        for original, action in ((newest, "KEEP"), (middle, "KEEP"), (oldest, "REMOVE")):
            line = next(line for line in result.stdout.splitlines() if line.startswith(copy_of[name, original]))
            assert f"  {action}  " in line, line
    for destination in destinations:
        name = destination["name"]
        stored = stored_snapshot_ids(deployment, destination)
        assert [snapshot_id[:8] for snapshot_id in stored] == sorted([copy_of[name, newest], copy_of[name, middle]])
        assert set(stored) < set(stored_before[name])
    # AND the catalog keeps the removed rows as evidence, each naming the prune run that removed it
    pruned = catalog_rows(
        deployment,
        f"SELECT s.destination, s.snapshot_id, r.kind, r.status, r.details FROM snapshots s "
        f"JOIN runs r ON r.id = s.prune_run_id WHERE s.job = '{JOB}' AND s.pruned_at IS NOT NULL",
    )
    assert sorted((destination, snapshot_id) for destination, snapshot_id, *_ in pruned) == sorted(
        [("offsite", copy_of["offsite", oldest]), ("primary", copy_of["primary", oldest])]
    )
    for _, snapshot_id, kind, status, details in pruned:
        assert (kind, status) == ("prune", "succeeded")
        recorded = json.loads(details)
        assert (recorded["kept"], recorded["removed"], recorded["removed_ids"]) == (2, 1, [snapshot_id])
    # AND the snapshots kept still restore and pass verification after the prune rewrote the repository
    assert_ok(deployment.replica("verify", JOB, "--snapshot", newest))
    # AND a removed one is refused with the reason, not verified against its leftover sidecar (a false report)
    refused = deployment.replica("verify", JOB, "--snapshot", oldest)
    assert refused.returncode == 2
    assert f"snapshot '{oldest}' was removed from 'primary' by retention (prune run" in refused.stderr
