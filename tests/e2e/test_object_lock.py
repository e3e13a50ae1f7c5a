"""A WORM destination end to end: init, backup with a copy into an Object Lock bucket, verify and prune all succeed
with real restic against moto's server; prune's deletes leave the locked data versions in place; `status` shows
which destination is locked without calling S3."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import DirectorySource
from tests.support.s3server import free_port

JOB = "worm"
KEEP_ONLY_THE_NEWEST = {"keep_last": 1, "keep_hourly": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}
RETENTION_DAYS = 1


@pytest.fixture
def locked_bucket(deployment: Deployment) -> Iterator[str]:
    """A bucket with Object Lock and a default GOVERNANCE retention of a day; emptied afterwards by bypassing the
    retention (GOVERNANCE allows that to a privileged caller, COMPLIANCE to nobody)."""
    client = deployment.s3.client()
    name = f"e2e-worm-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": RETENTION_DAYS}},
        },
    )
    yield name
    for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            client.delete_object(
                Bucket=name, Key=item["Key"], VersionId=item["VersionId"], BypassGovernanceRetention=True
            )
    client.delete_bucket(Bucket=name)


def versions(deployment: Deployment, bucket: str, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the object versions and the delete markers under a prefix."""
    listed = deployment.s3.client().list_object_versions(Bucket=bucket, Prefix=prefix)
    return listed.get("Versions", []), listed.get("DeleteMarkers", [])


def test_a_worm_destination_takes_backups_copies_verification_and_prune_and_status_shows_it(
    deployment: Deployment, locked_bucket: str, tmp_path: Path
) -> None:
    # GIVEN a job whose primary is a plain bucket and whose offsite is an Object Lock bucket, keeping one snapshot
    deployment.write_policy("worm-keep-one", rpo="1h", rto="10m", retention=KEEP_ONLY_THE_NEWEST)
    source = DirectorySource(tmp_path)
    primary = {"name": "primary", "bucket": deployment.new_bucket("worm-p"), "prefix": "restic/worm"}
    offsite = {"name": "offsite", "bucket": locked_bucket, "prefix": "restic/worm"}
    deployment.write_job(JOB, source.store_config(), [primary, offsite], policy="worm-keep-one")

    # WHEN it is initialised, backed up twice (each backup copied into the locked bucket) and verified there
    assert_ok(deployment.replica("init", JOB))
    for _ in range(2):
        source.add_rows(5)
        assert_ok(deployment.replica("backup", JOB))
    offsite_prefix = f"{offsite['prefix']}/"
    before_verify = versions(deployment, locked_bucket, offsite_prefix)
    assert_ok(deployment.replica("verify", JOB, "--destination", "offsite"))

    # THEN the verification wrote nothing to the locked bucket: check and restore ran with --no-lock (a lock file
    # would have left a version and a delete marker behind)
    assert versions(deployment, locked_bucket, offsite_prefix) == before_verify

    # WHEN retention removes the older snapshot from the locked bucket
    stored_before = versions(deployment, locked_bucket, f"{offsite['prefix']}/snapshots/")[0]
    assert len(stored_before) == 2
    result = deployment.replica("prune", JOB, "--destination", "offsite", "--json")
    assert_ok(result)
    assert [entry["error"] for entry in json.loads(result.stdout)["destinations"]] == [None]

    # THEN restic no longer lists it in the locked bucket, but its deletes only added delete markers: every version
    # it "removed" (the snapshot, packs, indexes) is still stored, locked in GOVERNANCE mode
    stored, markers = versions(deployment, locked_bucket, offsite_prefix)
    client = deployment.s3.client()
    listed = client.list_objects_v2(Bucket=locked_bucket, Prefix=f"{offsite['prefix']}/snapshots/")["Contents"]
    assert len(listed) == 1
    removed_keys = {marker["Key"] for marker in markers if not marker["Key"].startswith(f"{offsite_prefix}locks/")}
    assert any("/snapshots/" in key for key in removed_keys)
    stored_keys = {version["Key"] for version in stored}
    assert removed_keys <= stored_keys
    snapshot_versions = [version for version in stored if "/snapshots/" in version["Key"]]
    assert {version["VersionId"] for version in snapshot_versions} == {v["VersionId"] for v in stored_before}
    removed = next(version for version in snapshot_versions if version["Key"] in removed_keys)
    head = client.head_object(Bucket=locked_bucket, Key=removed["Key"], VersionId=removed["VersionId"])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    # and not even the bucket's owner can remove a locked version without bypassing the retention
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(Bucket=locked_bucket, Key=removed["Key"], VersionId=removed["VersionId"])

    # WHEN status is asked, with an S3 endpoint that refuses every connection
    unreachable = deployment.environment(REPLICA_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    document = json.loads(deployment.replica("status", "--json", env=unreachable).stdout)

    # THEN it shows, from the catalog alone, the offsite locked with its mode and retention (as the prune saw it)
    # and the primary not locked (as the last backup saw it)
    job = next(job for job in document["jobs"] if job["job"] == JOB)
    locks = {destination["name"]: destination["object_lock"] for destination in job["destinations"]}
    newest = dict(catalog_rows(deployment, f"SELECT kind, max(id) FROM runs WHERE job = '{JOB}' GROUP BY kind"))
    assert locks["offsite"] == {
        "enabled": True,
        "mode": "GOVERNANCE",
        "retention_days": RETENTION_DAYS,
        "retention_years": None,
        "checked_at": locks["offsite"]["checked_at"],
        "run_id": newest["prune"],
    }
    assert datetime.fromisoformat(locks["offsite"]["checked_at"]) <= datetime.fromisoformat(document["generated_at"])
    assert locks["primary"] == {
        "enabled": False,
        "mode": None,
        "retention_days": None,
        "retention_years": None,
        "checked_at": locks["primary"]["checked_at"],
        "run_id": newest["backup"],
    }
    # and every copy recorded the state too
    copies = catalog_rows(deployment, f"SELECT details FROM runs WHERE job = '{JOB}' AND kind = 'copy'")
    assert [json.loads(details)["object_lock"]["mode"] for (details,) in copies] == ["GOVERNANCE", "GOVERNANCE"]
