"""S3 faults end to end: the real CLI, restic and boto3 reach moto through a proxy that throttles, fails, refuses,
answers with a skewed clock, hangs or cuts answers short, on command.

GIVEN one job whose primary destination's `endpoint_url` is the fault proxy (so restic and replica's own S3 requests
both cross it), initialised and backed up once with no fault, with a webhook as notifier: each persistent fault
fails a backup quickly in its named state, with a one-line message and an alert, the run recorded and nothing lost
(the baseline snapshot still listed as usable, every object of the repository byte for byte unchanged); short
bursts of faults are retried and pass without a failure, a report or an alert; and after all of them the baseline
still verifies.

Time: one repository for the module; a persistent fault costs the probe's deadline (twice for a hang, boto3 tries
twice) instead of restic's ~97 s of retries. The module runs its tests in file order (the last one verifies the
baseline after every fault), like every pytest module; each test also stands alone.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import DirectorySource
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.receivers import WebhookReceiver

JOB = "faulted"
# The probe's deadline here (REPLICA_S3_PROBE_TIMEOUT_SECONDS): what a hanging, throttling or failing endpoint
# costs before the run fails. The default is 10 s; loopback answers in milliseconds.
PROBE_TIMEOUT_SECONDS = 1.0
# A persistent fault must be told apart from a working endpoint well before restic would give up (~97 s of
# retries on 503, forever on a silent endpoint).
DETECT_WITHIN_SECONDS = 15.0
# Seconds each fault took to fail its command, for the README's table (printed with `pytest -s`).
MEASURED: dict[str, float] = {}


@dataclass
class Faulted:
    """The job's source, primary destination (behind the proxy) and notifier, and the snapshot of its first backup."""

    source: DirectorySource
    destination: dict[str, Any]
    webhook: WebhookReceiver
    baseline: str


@pytest.fixture(scope="module")
def faulted(
    deployment: Deployment, fault_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Faulted]:
    """GIVEN a directory job behind the fault proxy, with a webhook notifier, initialised and backed up once."""
    with WebhookReceiver() as webhook:
        deployment.environment_extra["REPLICA_S3_PROBE_TIMEOUT_SECONDS"] = str(PROBE_TIMEOUT_SECONDS)
        source = DirectorySource(tmp_path_factory.mktemp("source"))
        destination = {
            "name": "primary",
            "bucket": deployment.new_bucket("faults"),
            "prefix": "restic/faults",
            "endpoint_url": fault_proxy.endpoint_url,
        }
        # The copy's destination is reached directly (the settings' endpoint): faults hit the primary only.
        offsite = {"name": "offsite", "bucket": deployment.new_bucket("faults-o"), "prefix": "restic/faults"}
        notify = [{"name": "hook", "kind": "webhook", "url": webhook.url, "timeout": 5, "retries": 0}]
        deployment.write_job(JOB, source.store_config(), [destination, offsite], notify=notify)
        assert_ok(deployment.replica("init", JOB))
        assert_ok(deployment.replica("backup", JOB))
        rows = catalog_rows(
            deployment, f"SELECT snapshot_id FROM snapshots WHERE job = '{JOB}' AND destination = 'primary'"
        )
        (baseline,) = rows[0]
        yield Faulted(source, destination, webhook, baseline)
    if MEASURED:
        print("\nseconds to fail, per fault:", {fault: round(seconds, 1) for fault, seconds in MEASURED.items()})


def stored_objects(deployment: Deployment, destination: dict[str, Any]) -> dict[str, str]:
    """Return every object of the destination's repository with its ETag, read from moto directly (not through
    the proxy)."""
    paginator = deployment.s3.client().get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=destination["bucket"], Prefix=destination["prefix"] + "/")
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def newest_run(deployment: Deployment, kind: str) -> dict[str, Any]:
    """Return the job's newest run of `kind` as `replica runs --json` shows it."""
    runs: list[dict[str, Any]] = deployment.replica_json("runs", "--job", JOB, "--limit", "5")
    return next(run for run in runs if run["kind"] == kind)


def alerts_since(faulted: Faulted, count_before: int) -> list[dict[str, Any]]:
    """Return the webhook notifications received after the first `count_before`."""
    return [request.json() for request in faulted.webhook.requests[count_before:]]


def usable_snapshots(deployment: Deployment) -> set[str]:
    """Return the ids of the job's snapshots the catalog holds as usable recovery points."""
    rows = catalog_rows(deployment, f"SELECT snapshot_id FROM snapshots WHERE job = '{JOB}' AND usable")
    return {str(row[0]) for row in rows}


def test_restic_and_boto3_work_through_the_proxy_without_a_fault(fault_proxy: FaultProxy, faulted: Faulted) -> None:
    # GIVEN the repository made and backed up through the proxy (the fixture: replica init, replica backup)
    # THEN restic's and boto3's requests of every kind crossed it (the probe's HEAD, restic's PUT of packs and
    # DELETE of its lock, GETs of the config and index; the sidecar's PUT), none faulted, nothing announced
    seen = {(request.method, "/data/" in request.key) for request in fault_proxy.requests}
    assert {("PUT", True), ("GET", False), ("HEAD", False), ("DELETE", False)} <= seen
    assert any(request.method == "PUT" and "/replica/fingerprints/" in request.key for request in fault_proxy.requests)
    assert fault_proxy.faults_served == 0
    assert faulted.webhook.requests == []
    # (restic check and restore through the proxy: the last test, which verifies the baseline)


@dataclass(frozen=True)
class Case:
    """A fault on every request, and how the backup it breaks must end."""

    fault: Callable[[], Fault]
    state: str
    exit_code: int
    says: str  # what the one-line message must say (lower case)


PERSISTENT_FAULTS = {
    "503 SlowDown": Case(Fault.slow_down, "throttled", 3, "throttles requests (503)"),
    "500 InternalError": Case(Fault.internal_error, "storage_error", 3, "server errors (500)"),
    "403 AccessDenied": Case(Fault.access_denied, "auth_failed", 5, "access denied"),
    "403 RequestTimeTooSkewed": Case(Fault.clock_skew, "clock_skew", 3, "clock is 60 min ahead of this host's"),
    "hang (accepts, never answers)": Case(Fault.hang, "storage_unreachable", 3, "no answer within the deadline"),
}


@pytest.mark.parametrize("name", list(PERSISTENT_FAULTS))
def test_a_persistent_fault_fails_the_backup_quickly_in_its_state_and_loses_nothing(
    name: str, deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted
) -> None:
    case = PERSISTENT_FAULTS[name]
    objects_before = stored_objects(deployment, faulted.destination)
    usable_before = usable_snapshots(deployment)
    assert faulted.baseline in usable_before
    alerts_before = len(faulted.webhook.requests)
    # GIVEN the endpoint answers every request with the fault
    fault = fault_proxy.inject(case.fault())
    # WHEN a backup runs
    started = time.monotonic()
    try:
        backup = deployment.replica("backup", JOB, timeout=60)
    finally:
        fault_proxy.clear()
    MEASURED[name] = seconds = time.monotonic() - started

    # THEN it fails quickly with the state's exit code and one line naming the bucket and the cause
    assert backup.returncode == case.exit_code, backup.stderr
    assert fault.served > 0
    assert seconds < DETECT_WITHIN_SECONDS
    last_line = backup.stderr.strip().splitlines()[-1]
    assert last_line.startswith("replica: error: "), backup.stderr
    assert case.says in last_line.lower() and faulted.destination["bucket"] in last_line
    # AND the run is recorded, finished, failed in that state, with that message and no snapshot
    run = newest_run(deployment, "backup")
    assert (run["kind"], run["status"], run["failure"]) == ("backup", "failed", case.state)
    assert run["finished_at"] is not None and run["snapshot_id"] is None
    assert run["error"] in last_line and "\n" not in run["error"]
    # AND one failure alert went out, carrying the state and the message
    alerts = alerts_since(faulted, alerts_before)
    assert [(alert["event"], alert["fields"].get("failure")) for alert in alerts] == [("failure", case.state)]
    assert run["error"] in alerts[0]["text"]
    sent = b"".join(request.body for request in faulted.webhook.requests[alerts_before:])
    assert not [secret for secret in deployment.secrets() if secret.encode() in sent]
    # AND nothing in the repository changed (no object gone or altered, no snapshot, pack or lock left behind),
    # and the catalog holds the same usable recovery points (the last test verifies the baseline again)
    assert stored_objects(deployment, faulted.destination) == objects_before
    assert usable_snapshots(deployment) == usable_before


def test_a_short_burst_of_slow_down_is_retried_and_the_backup_succeeds(
    deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted
) -> None:
    alerts_before = len(faulted.webhook.requests)
    faulted.source.add_rows(3)
    # GIVEN the endpoint throttles the next 3 requests, whoever makes them (the probe, restic)
    fault = fault_proxy.inject(Fault.slow_down(first=3))
    # WHEN a backup runs
    started = time.monotonic()
    try:
        backup = deployment.replica("backup", JOB)
    finally:
        fault_proxy.clear()
    MEASURED["transient 503 SlowDown (3 requests)"] = time.monotonic() - started
    # THEN it succeeds: the burst was retried, and no failure was recorded or announced
    assert_ok(backup)
    assert fault.served == 3
    run = newest_run(deployment, "backup")
    assert (run["kind"], run["status"], run["failure"], run["error"]) == ("backup", "succeeded", None, None)
    assert "failure" not in {alert["event"] for alert in alerts_since(faulted, alerts_before)}
    # AND the new snapshot is a usable recovery point beside the baseline
    assert {run["snapshot_id"], faulted.baseline} <= usable_snapshots(deployment)


@dataclass
class FaultedVerify:
    """A verification of the baseline run with a fault injected: the CLI's outcome, its run, what it sent."""

    result: subprocess.CompletedProcess[str]
    run: dict[str, Any]
    new_reports: int
    alerts: list[dict[str, Any]]
    seconds: float


def verify_baseline_through(
    deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted, fault: Fault
) -> FaultedVerify:
    """Verify the baseline (backed up before every fault of this module) with `fault` injected, cleared after."""
    alerts_before = len(faulted.webhook.requests)
    ((reports_before,),) = catalog_rows(deployment, "SELECT count(*) FROM reports")
    fault_proxy.inject(fault)
    started = time.monotonic()
    try:
        result = deployment.replica("verify", JOB, "--snapshot", faulted.baseline)
    finally:
        fault_proxy.clear()
    seconds = time.monotonic() - started
    ((reports_after,),) = catalog_rows(deployment, "SELECT count(*) FROM reports")
    run = newest_run(deployment, "verify")
    return FaultedVerify(result, run, reports_after - reports_before, alerts_since(faulted, alerts_before), seconds)


def test_a_verification_kept_from_running_by_a_failing_endpoint_alerts_but_reports_no_data_loss(
    deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted
) -> None:
    # GIVEN the primary's endpoint answers 500 InternalError to every request; WHEN the baseline is verified there
    verify = verify_baseline_through(deployment, fault_proxy, faulted, Fault.internal_error())
    # THEN the verification fails as storage_error (exit 3) and alerts, but no data-loss report blames the data
    assert verify.result.returncode == 3, verify.result.stderr
    assert (verify.run["status"], verify.run["failure"]) == ("failed", "storage_error")
    assert verify.new_reports == 0
    failures = [alert for alert in verify.alerts if alert["event"] == "failure"]
    assert len(failures) == 1 and failures[0]["fields"]["failure"] == "storage_error", failures


def test_after_every_fault_the_baseline_verifies_and_cut_short_answers_raise_no_false_corruption(
    deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted
) -> None:
    requests_before = len(fault_proxy.requests)
    # GIVEN the next two downloads of packs are cut off halfway (full Content-Length announced)
    fault = Fault.truncate(key_contains="/data/", first=2)
    # WHEN the baseline, backed up before every fault of this module, is verified (restic check reads every pack,
    # then restic restore, then the comparison with the backup-time fingerprint)
    verify = verify_baseline_through(deployment, fault_proxy, faulted, fault)
    MEASURED["transient truncated pack downloads (2)"] = verify.seconds
    # THEN the verification passes: the baseline survived every fault, restic downloaded the cut packs again, and
    # nothing was called corrupt
    assert_ok(verify.result)
    assert fault.served == 2
    assert (verify.run["kind"], verify.run["status"], verify.run["failure"]) == ("verify", "succeeded", None)
    assert verify.new_reports == 0
    assert "failure" not in {alert["event"] for alert in verify.alerts}
    # AND every other request of restic check and restic restore crossed the proxy untouched
    verified = fault_proxy.requests[requests_before:]
    packs_read = [request for request in verified if request.method == "GET" and "/data/" in request.key]
    assert len(packs_read) > 2 and sum(request.fault is not None for request in verified) == 2


def test_a_pack_damaged_in_transit_is_confirmed_intact_at_rest_and_the_verification_passes_without_a_report(
    deployment: Deployment, fault_proxy: FaultProxy, faulted: Faulted
) -> None:
    # GIVEN the next download of a pack has one byte flipped on its way (the stored pack is intact)
    fault = Fault.flip(key_contains="/data/", first=1)
    # WHEN the baseline is verified (restic check reads every pack back and hashes it)
    verify = verify_baseline_through(deployment, fault_proxy, faulted, fault)
    MEASURED["pack flipped in transit (1)"] = verify.seconds
    # THEN restic saw a damaged pack, replica re-downloaded it and found it hashing to its name: the damage was not
    # at rest, so the verification ran again, passed, and says so; no data-loss report, no failure alert
    assert_ok(verify.result)
    assert fault.served == 1
    assert (verify.run["status"], verify.run["failure"]) == ("succeeded", None)
    assert verify.run["details"]["inconclusive_attempts"] == 1
    assert "not at rest" in verify.run["details"]["inconclusive_reason"]
    assert verify.new_reports == 0
    assert "failure" not in {alert["event"] for alert in verify.alerts}
