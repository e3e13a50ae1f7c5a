"""Stopping `replica serve` with SIGTERM while an action runs: the action's process is stopped (SIGINT, which lets
restic release its lock), its run is recorded `interrupted`, and the server exits 0. restic is made slow by a
wrapper that sleeps instead of backing up: a real backup of test data ends before the signal could arrive."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.sources import DirectorySource
from tests.e2e.web import create_token, running_server

pytestmark = pytest.mark.e2e

JOB = "web-stopped"
WAIT_SECONDS = 60


def _slow_restic(folder: Path, marker: Path) -> Path:
    """Write a restic that sleeps (marking that it started) when asked to back up, and is real restic otherwise."""
    script = folder / "restic"
    real = shutil.which("restic")
    script.write_text(
        "#!/bin/sh\n"
        'for argument in "$@"; do\n'
        f'  if [ "$argument" = backup ]; then echo $$ > {marker}; exec sleep 300; fi\n'
        "done\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_sigterm_interrupts_a_running_action_and_records_it(deployment: Deployment, tmp_path: Path) -> None:
    # GIVEN a job, and a server whose restic hangs in backups
    source = DirectorySource(tmp_path)
    deployment.write_job(JOB, source.store_config(), deployment.two_destinations("stop"))
    assert_ok(deployment.replica("init", JOB))
    operator = create_token(deployment, "stopper", "operator")
    marker = tmp_path / "backup-started"
    restic = _slow_restic(tmp_path, marker)
    with running_server(deployment, REPLICA_RESTIC_BINARY=str(restic)) as server:
        # WHEN the operator starts a backup, and the server gets SIGTERM while restic runs
        answer = server.client(operator).post(f"/api/jobs/{JOB}/backup")
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + WAIT_SECONDS
        while not marker.exists():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        sleeper = int(marker.read_text())
        started = time.monotonic()
        code = server.stop()

        # THEN the server exits 0 within the grace period, and restic's process is gone
        assert code == 0, server.log()
        assert time.monotonic() - started < 30
        with pytest.raises(ProcessLookupError):
            os.kill(sleeper, 0)

    # AND the run is recorded interrupted, by the token's name, and nothing is left running
    runs = deployment.replica_json("runs", "--job", JOB)
    backup = next(run for run in runs if run["kind"] == "backup")
    assert (backup["status"], backup["failure"], backup["actor"]) == ("interrupted", "interrupted", "token:stopper")
    assert all(run["status"] != "running" for run in runs)
    assert subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, check=False).returncode == 1
