"""A damaged primary repository: verify fails, a data-loss report names the other destination, the copy verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows, damage_largest_pack
from tests.e2e.sources import SqliteSource

JOB = "corrupted"


@pytest.fixture(scope="module")
def backed_up(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """GIVEN a job backed up and verified once, whose primary repository then has a pack damaged at rest."""
    source = SqliteSource(tmp_path_factory.mktemp("source"))
    source.add_rows(3000)
    destinations = deployment.two_destinations("corrupt")
    deployment.write_job(JOB, source.store_config(), destinations)
    assert_ok(deployment.replica("init", JOB))
    assert_ok(deployment.replica("backup", JOB))
    assert_ok(deployment.replica("verify", JOB))
    assert_ok(deployment.replica("backup", JOB))
    pack = damage_largest_pack(deployment, destinations[0])
    yield {"bucket": destinations[0]["bucket"], "pack": pack}


def test_verify_of_damaged_primary_fails_and_reports_the_copy_as_resolution(
    deployment: Deployment, backed_up: dict[str, str]
) -> None:
    # WHEN the newest snapshot of the damaged primary is verified
    verify = deployment.replica("verify", JOB)
    # THEN it fails with the damage named, and a report is written
    assert verify.returncode == 1, verify.stderr
    assert "[FAIL] repository" in verify.stdout
    assert "data-loss report" in verify.stdout
    report_path = Path(verify.stdout.split("data-loss report", 1)[1].split(": ", 1)[1].strip())
    assert report_path.is_file()
    report = json.loads(report_path.with_suffix(".json").read_text())
    assert report["job"] == JOB and report["destination"] == "primary"
    assert {check["name"] for check in report["failed_checks"]} >= {"repository"}
    first = report["resolutions"][0]
    assert first["action"] == "restore-from-other-destination" and first["destination"] == "offsite"
    assert report["affected"]["clients"] == ["Client A", "Client B"]
    # the previous verified snapshot bounds the window of data at risk
    assert report["data_at_risk"]["window_start"] is not None
    assert report["newest_verified_recovery_points"]["primary"]["snapshot_id"] != report["snapshot_id"]
    markdown = report_path.read_text()
    assert "offsite" in markdown and "Client A" in markdown and "Expected recovery time" in markdown
    # AND the report is in the catalog and listed
    listed = deployment.replica_json("reports")
    assert listed[0]["job"] == JOB and listed[0]["markdown_path"] == str(report_path)
    shown = deployment.replica("reports", "show", str(listed[0]["id"]))
    assert_ok(shown)
    assert "offsite" in shown.stdout
    # AND the run is recorded as failed, and status says the job is failing
    status = catalog_rows(
        deployment, f"SELECT status, error FROM runs WHERE job = '{JOB}' AND kind = 'verify' ORDER BY id DESC LIMIT 1"
    )[0]
    assert status[0] == "failed" and "repository" in status[1]
    job_status = next(job for job in deployment.replica_json("status")["jobs"] if job["job"] == JOB)
    assert job_status["state"] == "failing"


def test_the_untouched_copy_still_verifies(deployment: Deployment, backed_up: dict[str, str]) -> None:
    # WHEN the same recovery point is verified in the other destination
    verify = deployment.replica("verify", JOB, "--destination", "offsite")
    # THEN it passes
    assert_ok(verify)
    assert "PASSED" in verify.stdout


def test_all_destinations_names_the_damaged_copy(deployment: Deployment, backed_up: dict[str, str]) -> None:
    # WHEN the newest recovery point is verified in every destination
    verify = deployment.replica("verify", JOB, "--all-destinations")
    # THEN the copies are not equivalent: the damaged primary is named, the offsite copy passes
    assert verify.returncode == 1
    assert "NOT equivalent; failed: primary" in verify.stdout
    assert "in 'offsite' (run" in verify.stdout and verify.stdout.count("PASSED") == 1
