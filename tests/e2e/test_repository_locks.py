"""restic locks left behind, end to end with real restic on moto: a stale lock of a dead process of this host is
removed with plain `restic unlock` (logged, an `unlock` event) and the prune goes on; a lock of another host is
never removed, and the prune fails as `repository_locked` naming its holder and age.

A lock is left behind the way it happens in the field: a real `restic backup` is killed with SIGTERM (restic
releases its lock on SIGINT only). The other host is a UTS namespace with its own hostname.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.sources import DirectorySource
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

JOB = "locked"
KEEP_ONLY_THE_NEWEST = {"keep_last": 1, "keep_hourly": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}
LOCK_WAIT_SECONDS = 15


@pytest.fixture(scope="module")
def destination(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The primary destination of a job with two snapshots, the newest verified: every prune of it must remove the
    older one (keep_last 1), so it always runs restic's exclusive `forget --prune`."""
    deployment.write_policy("keep-one-locks", rpo="1h", rto="10m", retention=KEEP_ONLY_THE_NEWEST)
    source = DirectorySource(tmp_path_factory.mktemp("locks-source"))
    destinations = deployment.two_destinations("locks")
    deployment.write_job(JOB, source.store_config(), destinations, policy="keep-one-locks")
    assert_ok(deployment.replica("init", JOB))
    for _ in range(2):
        source.add_rows(3)
        assert_ok(deployment.replica("backup", JOB))
    assert_ok(deployment.replica("verify", JOB))
    return destinations[0]


def lock_keys(deployment: Deployment, destination: dict[str, Any]) -> list[str]:
    """Return the keys of the lock files in the destination's repository, read from the bucket itself."""
    listed = deployment.s3.client().list_objects_v2(
        Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/locks/"
    )
    return sorted(item["Key"] for item in listed.get("Contents", []))


def snapshot_count(deployment: Deployment, destination: dict[str, Any]) -> int:
    listed = deployment.s3.client().list_objects_v2(
        Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/snapshots/"
    )
    return len(listed.get("Contents", []))


def leave_lock_behind(
    deployment: Deployment, destination: dict[str, Any], hostname: str | None = None, exclusive: bool = False
) -> int:
    """Start a real `restic backup` of a stdin that never ends (on `hostname`, in a UTS namespace of its own, when
    given), wait until its lock is in the bucket, SIGTERM it and return its pid: its lock stays behind.

    `exclusive`: instead, a restic holding the repository's exclusive lock, as a prune or check does (`key passwd`
    waiting for its new password on a FIFO nobody writes), killed with SIGKILL."""
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(deployment.root),
        "RESTIC_REPOSITORY": f"s3:{deployment.s3.endpoint_url}/{destination['bucket']}/{destination['prefix']}",
        "RESTIC_PASSWORD_FILE": str(deployment.password_file),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    backup = "restic backup --stdin --stdin-filename never-ends"
    if exclusive:
        fifo = deployment.root / "never-written-password"
        if not fifo.exists():
            os.mkfifo(fifo)
        backup = f"restic key passwd --new-password-file {fifo}"
    # `unshare` and `sh` exec in place (no fork): the pid restic writes into its lock is the pid started here.
    argv = ["unshare", "--uts", "sh", "-c", f"hostname {hostname} && exec {backup}"] if hostname else backup.split()
    before = set(lock_keys(deployment, destination))
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
    )
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not set(lock_keys(deployment, destination)) - before:
            assert process.poll() is None, "restic ended before taking its lock"
            assert time.monotonic() < deadline, "restic took no lock"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL if exclusive else signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdin is not None
        process.stdin.close()
    return process.pid


def unlock_events(deployment: Deployment) -> list[tuple[str, str, str, str]]:
    return [
        (row[0], row[1], row[2], row[3])
        for row in catalog_rows(
            deployment, "SELECT outcome, destination, figures, detail FROM events WHERE kind='unlock'"
        )
    ]


def test_a_lock_of_another_host_is_never_removed_and_the_prune_names_its_holder_and_age(
    deployment: Deployment, destination: dict[str, Any]
) -> None:
    # GIVEN a lock left in the repository by a restic of another host (killed there, so it never goes away itself)
    pid = leave_lock_behind(deployment, destination, hostname="other-host")
    held = lock_keys(deployment, destination)
    snapshots_before = snapshot_count(deployment, destination)
    assert len(held) == 1 and snapshots_before == 2

    # WHEN retention is applied
    result = deployment.replica("prune", JOB, "--destination", "primary")

    # THEN the prune fails as locked (exit 6), naming the holder's host, pid and user and the lock's age
    assert result.returncode == 6, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert f"repository is locked by pid {pid} on host other-host (user root) since " in line
    assert line.endswith(" s ago)"), line
    # AND the run is recorded as repository_locked, nothing was removed, and the lock is still there
    ((failure, error),) = catalog_rows(
        deployment, f"SELECT failure, error FROM runs WHERE job='{JOB}' AND kind='prune' ORDER BY id DESC LIMIT 1"
    )
    assert failure == "repository_locked" and "other-host" in error
    assert snapshot_count(deployment, destination) == snapshots_before
    assert lock_keys(deployment, destination) == held
    assert unlock_events(deployment) == []

    # (the other host's operator clears it; replica never does)
    deployment.s3.client().delete_object(Bucket=destination["bucket"], Key=held[0])


def test_a_stale_lock_of_a_dead_process_here_is_cleared_with_restic_unlock_recorded_and_the_prune_goes_on(
    deployment: Deployment, destination: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a lock left by a restic of this host killed with SIGTERM (its pid is gone), which keeps a prune's
    # exclusive lock out
    pid = leave_lock_behind(deployment, destination)
    assert len(lock_keys(deployment, destination)) == 1
    snapshots_before = snapshot_count(deployment, destination)

    # WHEN retention is applied
    result = deployment.replica("prune", JOB, "--destination", "primary")

    # THEN the stale lock was removed, said so, and the prune removed the older snapshot
    assert_ok(result)
    assert f"removed the stale lock of dead pid {pid} with restic unlock" in result.stderr
    assert lock_keys(deployment, destination) == []
    assert snapshot_count(deployment, destination) == snapshots_before - 1
    # AND the verification log holds one `unlock` event naming the holder and the lock's age
    ((outcome, name, figures_text, detail),) = unlock_events(deployment)
    figures = json.loads(figures_text)
    assert (outcome, name) == ("cleared", "primary")
    assert figures["holder_pid"] == pid and figures["holder_host"] == socket.gethostname()
    assert figures["during"] == "prune" and figures["exclusive"] is False
    assert 0 <= figures["age_seconds"] < 60
    assert f"dead pid {pid}" in detail
    ((failure,),) = catalog_rows(
        deployment, f"SELECT failure FROM runs WHERE job='{JOB}' AND kind='prune' ORDER BY id DESC LIMIT 1"
    )
    assert failure is None


def test_a_backup_kept_out_by_a_stale_exclusive_lock_clears_it_and_succeeds_in_one_run(
    deployment: Deployment, destination: dict[str, Any]
) -> None:
    # GIVEN an exclusive lock left by a restic of this host killed with SIGKILL (as a prune or check killed by the
    # OOM killer leaves one): restic refuses every backup while it is there
    pid = leave_lock_behind(deployment, destination, exclusive=True)
    assert len(lock_keys(deployment, destination)) == 1
    unlocks_before = len(unlock_events(deployment))
    backups_before = catalog_rows(deployment, f"SELECT count(*) FROM runs WHERE job='{JOB}' AND kind='backup'")

    # WHEN the job is backed up
    result = deployment.replica("backup", JOB)

    # THEN the stale lock was removed and the dump taken again within the same run, which succeeded: one run more,
    # no failed one (nothing to alert on), one `unlock` event of that run
    assert_ok(result)
    assert f"removed the stale lock of dead pid {pid} with restic unlock" in result.stderr
    assert lock_keys(deployment, destination) == []
    ((count,),) = backups_before
    runs = catalog_rows(
        deployment, f"SELECT id, status, failure FROM runs WHERE job='{JOB}' AND kind='backup' ORDER BY id DESC"
    )
    assert len(runs) == count + 1 and runs[0][1:] == ("succeeded", None)
    events = unlock_events(deployment)[unlocks_before:]
    assert len(events) == 1 and json.loads(events[0][2])["during"] == "backup"
    assert json.loads(events[0][2])["exclusive"] is True


def test_a_backup_refused_while_its_fingerprint_still_walks_the_tree_succeeds_on_its_second_attempt(
    deployment: Deployment, destination: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a tree whose fingerprint's walk takes longer than restic takes to refuse, and a restic that refuses the
    # first backup at once, naming a stale exclusive lock of a dead process of this host (every other call is the
    # real restic): the first attempt ends while its walk still runs, and the walk is then abandoned
    tree = tmp_path / "tree"
    for folder in range(20):
        (tree / f"d{folder}").mkdir(parents=True)
        for number in range(500):
            (tree / f"d{folder}" / f"f{number}").write_text(f"{folder}/{number}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker = tmp_path / "refused-once"
    script = tmp_path / "restic"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e {marker} ] && [ "$2" = backup ]; then\n'
        f"  touch {marker}\n"
        f"  echo 'Fatal: unable to create lock in backend: repository is already locked exclusively by PID {dead.pid}"
        f" on {socket.gethostname()} by root (UID 0, GID 0)' >&2\n"
        "  echo 'lock was created at 2026-11-27 11:59:48 (5.2s ago)' >&2\n"
        "  echo 'storage ID 0f1e2d3c' >&2\n"
        "  exit 1\n"
        "fi\n"
        'exec restic "$@"\n'
    )
    script.chmod(0o755)
    job = yaml.safe_load((deployment.root / "jobs" / f"{JOB}.yaml").read_text())
    job["store"] = {"kind": "directory", "path": str(tree)}
    (deployment.root / "jobs" / "locked-walk.yaml").write_text(yaml.safe_dump({**job, "name": "locked-walk"}))

    # WHEN it is backed up
    result = deployment.replica("backup", "locked-walk", env=deployment.environment(REPLICA_RESTIC_BINARY=str(script)))

    # THEN the abandoned walk of the first attempt did not stop the second: one run, succeeded, all files counted
    assert_ok(result)
    assert marker.exists()
    runs = catalog_rows(deployment, "SELECT status, failure FROM runs WHERE job='locked-walk' AND kind='backup'")
    assert runs == [("succeeded", None)]
    ((fingerprint,),) = catalog_rows(
        deployment, "SELECT fingerprint FROM snapshots WHERE job='locked-walk' AND destination='primary'"
    )
    assert json.loads(fingerprint)["files"] == 10_000
