"""A damaged primary repository: verify fails, a data-loss report names the other destination, the copy verifies.

And damage restic reports but the stored files do not have (a transit fault, an interrupted check): no data-loss
report. restic 0.14 prints the same "Pack ID does not match ... repository contains errors" for a pack flipped in
transit as for one damaged at rest, and no real fault can be aimed at exactly one `check` call, so a wrapper stands in
for restic there: it runs the real restic for everything but fails `check` with restic's own words, naming a real
pack of the intact offsite copy.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    offsite = deployment.s3.client().list_objects_v2(Bucket=destinations[1]["bucket"], Prefix="restic/corrupt/data/")
    yield {"bucket": destinations[0]["bucket"], "pack": pack, "offsite_pack": offsite["Contents"][0]["Key"]}


def test_verify_of_damaged_primary_fails_and_reports_the_copy_as_resolution(
    deployment: Deployment, backed_up: dict[str, str]
) -> None:
    # WHEN the newest snapshot of the damaged primary is verified
    verify = deployment.replica("verify", JOB)
    # THEN it fails with the damage named, and a report is written
    assert verify.returncode == 1, verify.stderr
    assert "[FAIL] repository" in verify.stdout
    # AND the damage is confirmed at rest: the pack was downloaded again and no longer hashes to its name
    assert "[FAIL] at-rest: re-downloaded 1 suspect file(s)" in verify.stdout
    assert f"1 damaged at rest: {backed_up['pack']}" in verify.stdout
    assert "data-loss report" in verify.stdout
    report_path = Path(verify.stdout.split("data-loss report", 1)[1].split(": ", 1)[1].strip())
    assert report_path.is_file()
    report = json.loads(report_path.with_suffix(".json").read_text())
    assert report["job"] == JOB and report["destination"] == "primary"
    assert {check["name"] for check in report["failed_checks"]} >= {"repository", "at-rest"}
    assert report["failure"] == "corrupt" and "- Failure state: `corrupt`" in report_path.read_text()
    # the report names the damaged object, with the hash its bytes have now
    (damaged,) = report["damaged_objects"]
    assert damaged["key"] == backed_up["pack"] and damaged["state"] == "damaged"
    assert damaged["expected_sha256"] == backed_up["pack"].rsplit("/", 1)[1] != damaged["found_sha256"]
    first = report["resolutions"][0]
    assert first["action"] == "restore-from-other-destination" and first["destination"] == "offsite"
    assert report["affected"]["clients"] == ["Client A", "Client B"]
    # the previous verified snapshot bounds the window of data at risk
    assert report["data_at_risk"]["window_start"] is not None
    assert report["newest_verified_recovery_points"]["primary"]["snapshot_id"] != report["snapshot_id"]
    markdown = report_path.read_text()
    assert f"`{backed_up['pack']}`: damaged" in markdown
    assert "offsite" in markdown and "Client A" in markdown and "Expected recovery time" in markdown
    # AND the report is in the catalog and listed
    listed = deployment.replica_json("reports")
    assert listed[0]["job"] == JOB and listed[0]["markdown_path"] == str(report_path)
    shown = deployment.replica("reports", "show", str(listed[0]["id"]))
    assert_ok(shown)
    assert "offsite" in shown.stdout
    # AND the run is recorded as failed, and status says the job is failing
    status = catalog_rows(
        deployment,
        f"SELECT status, error, failure FROM runs WHERE job = '{JOB}' AND kind = 'verify' ORDER BY id DESC LIMIT 1",
    )[0]
    assert status[0] == "failed" and "repository" in status[1]
    assert status[2] == "corrupt"
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


def flaky_restic(folder: Path, pack_key: str, *, every_check: bool) -> Path:
    """Write a restic that fails `check` (the first call only, or every call) with restic 0.14's exact damage
    message naming `pack_key`'s pack and a hash it does not have; everything else runs the real restic."""
    real = shutil.which("restic")
    assert real is not None
    marker = folder / "failed-once"
    pack_id = pack_key.rsplit("/", 1)[1]
    condition = "true" if every_check else f'[ ! -e "{marker}" ]'
    script = folder / "restic"
    script.write_text(
        "#!/bin/sh\n"
        # replica calls `restic --json check ...`
        f'if [ "$2" = "check" ] && {condition}; then\n'
        f'  touch "{marker}"\n'
        f'  echo "Pack ID does not match, want {pack_id}, got {secrets.token_hex(32)}" >&2\n'
        '  echo "Fatal: repository contains errors" >&2\n'
        "  exit 1\n"
        "fi\n"
        f'exec "{real}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def verify_offsite_with(deployment: Deployment, restic: Path) -> subprocess.CompletedProcess[str]:
    environment = deployment.environment(REPLICA_RESTIC_BINARY=str(restic))
    return deployment.replica("verify", JOB, "--destination", "offsite", env=environment)


def last_offsite_verification(deployment: Deployment) -> tuple[str, str | None, dict[str, Any], dict[str, Any]]:
    """Return the newest verification of the offsite copy: status, failure, details, verification-log event figures."""
    status, failure, details, run_id = catalog_rows(
        deployment,
        f"SELECT status, failure, details, id FROM runs WHERE job = '{JOB}' AND kind = 'verify' "
        "AND destination = 'offsite' ORDER BY id DESC",
    )[0]
    (figures,) = catalog_rows(deployment, f"SELECT figures FROM events WHERE kind = 'verify' AND run_id = {run_id}")[0]
    return status, failure, json.loads(details), json.loads(figures)


def reports_of_job(deployment: Deployment) -> int:
    return int(catalog_rows(deployment, f"SELECT count(*) FROM reports WHERE job = '{JOB}'")[0][0])


def test_a_check_failing_once_on_an_intact_pack_is_retried_and_passes(
    deployment: Deployment, backed_up: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN restic's check fails once, naming a pack of the offsite copy whose stored bytes are intact
    restic = flaky_restic(tmp_path, backed_up["offsite_pack"], every_check=False)
    reports_before = reports_of_job(deployment)
    # WHEN the offsite copy is verified
    verify = verify_offsite_with(deployment, restic)
    # THEN the pack is re-downloaded and found intact, the verification runs again and passes
    assert_ok(verify)
    assert "PASSED" in verify.stdout
    assert "1 attempt(s) inconclusive" in verify.stdout
    status, failure, details, figures = last_offsite_verification(deployment)
    assert (status, failure) == ("succeeded", None)
    # AND the run and its verification-log event record the inconclusive first attempt and why
    assert details["inconclusive_attempts"] == figures["inconclusive_attempts"] == 1
    reason = figures["inconclusive_reason"]
    assert "Pack ID does not match" in reason and f"1 intact: {backed_up['offsite_pack']}" in reason
    assert all(check["passed"] for check in figures["checks"])
    # AND no data-loss report is written
    assert reports_of_job(deployment) == reports_before


def test_a_check_failing_every_time_on_intact_packs_is_inconclusive_without_report(
    deployment: Deployment, backed_up: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN restic's check fails every time, naming a pack of the offsite copy whose stored bytes are intact
    restic = flaky_restic(tmp_path, backed_up["offsite_pack"], every_check=True)
    reports_before = reports_of_job(deployment)
    # WHEN the offsite copy is verified
    verify = verify_offsite_with(deployment, restic)
    # THEN the verification fails as inconclusive after two attempts, with a non-zero exit
    assert verify.returncode == 1, verify.stderr
    assert "INCONCLUSIVE" in verify.stdout
    assert "[ok  ] at-rest: re-downloaded 1 suspect file(s)" in verify.stdout
    status, failure, details, figures = last_offsite_verification(deployment)
    assert (status, failure) == ("failed", "inconclusive")
    assert details["inconclusive_attempts"] == figures["inconclusive_attempts"] == 2
    assert figures["failure"] == "inconclusive"
    # AND no data-loss report is written: the destination shows a failed verification, not lost data
    assert "data-loss report" not in verify.stdout
    assert reports_of_job(deployment) == reports_before
    job_status = next(job for job in deployment.replica_json("status")["jobs"] if job["job"] == JOB)
    offsite = next(destination for destination in job_status["destinations"] if destination["name"] == "offsite")
    assert offsite["last_verify"]["status"] == "failed"
