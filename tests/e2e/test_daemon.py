"""The daemon and run-due, end to end: real restic, moto's S3 server, the real CLI in separate processes."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Deployment, assert_ok, catalog_rows
from tests.e2e.daemons import DAEMON_STOP_SECONDS, DaemonProcess, wait_for
from tests.e2e.repositories import init_side_by_side
from tests.support.s3server import free_port


@pytest.fixture(autouse=True)
def _own_job_files(deployment: Deployment) -> Iterator[None]:
    """Remove the job files a test wrote: every daemon and run-due reads the whole folder."""
    before = set((deployment.root / "jobs").iterdir())
    yield
    for path in set((deployment.root / "jobs").iterdir()) - before:
        path.unlink()


def runs_of(deployment: Deployment, job: str, kind: str) -> list[tuple[int, str, str]]:
    return catalog_rows(
        deployment, f"SELECT id, status, actor FROM runs WHERE job = '{job}' AND kind = '{kind}' ORDER BY id"
    )


def count_runs(deployment: Deployment, job: str, kind: str, status: str) -> int:
    return sum(1 for _, run_status, _ in runs_of(deployment, job, kind) if run_status == status)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def directory_store(tmp_path: Path, name: str) -> dict[str, str]:
    source = tmp_path / name
    source.mkdir()
    (source / "orders.csv").write_text("".join(f"{n},order {n}\n" for n in range(500)))
    return {"kind": "directory", "path": str(source)}


@dataclass(frozen=True)
class InitialisedJob:
    """A test's job: its directory store, and two destinations whose repositories are initialised."""

    store: dict[str, str]
    destinations: list[dict[str, str]]


@pytest.fixture(scope="module")
def initialised(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, InitialisedJob]:
    """GIVEN the job of each test with its repositories initialised, all at once (each init is seconds of restic key
    setup). The job files are removed again: each test writes its own, with its schedules, and every daemon and
    run-due reads the whole folder."""
    folder = tmp_path_factory.mktemp("daemon-stores")
    labels = {
        "daemon-fast": "fast",
        "killed": "killed",
        "stopped-verify": "stopverify",
        "due": "due",
        "watched": "watched",
    }
    jobs = {
        name: InitialisedJob(directory_store(folder, name), deployment.two_destinations(label))
        for name, label in labels.items()
    }
    for name, job in jobs.items():
        deployment.write_job(name, job.store, job.destinations)
    init_side_by_side(deployment, list(jobs))
    for name in jobs:
        (deployment.root / "jobs" / f"{name}.yaml").unlink()
    return jobs


def slow_restic(folder: Path, subcommand: str, seconds: int) -> Path:
    """A restic that sleeps before `subcommand` (ending with 130 on SIGINT, as restic does), else real restic.

    Makes "during a backup" or "during a restore" last long enough to stop the daemon in it.
    """
    folder.mkdir(exist_ok=True)
    script = folder / "restic"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(130))\n"
        f"if {subcommand!r} in sys.argv[1:3]:\n"
        f"    open({str(folder / 'pids')!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        f"    time.sleep({seconds})\n"
        f"os.execv({shutil.which('restic')!r}, ['restic', *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    return script


def test_the_daemon_backs_up_verifies_and_prunes_on_its_own_and_metrics_match_status(
    deployment: Deployment, initialised: dict[str, InitialisedJob], tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # GIVEN a job with second-scale schedules and a policy that keeps the newest snapshot (and the newest verified)
    deployment.write_policy(
        "daemon-fast",
        rpo="1h",
        rto="10m",
        retention={"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
        verification={"read_data_subset": "100%"},
    )
    # The verify, never run, is due at start; an hourly one then leaves the job to backups and prunes. A verify due
    # every few seconds would come first whenever the job frees up and starve the prune, which only removes a
    # snapshot once there is one that is neither the newest nor the newest verified.
    schedule = {"backup": "every 3s", "verify": "every 1h", "prune": "every 1s"}
    job = initialised["daemon-fast"]
    arguments = ("daemon-fast", job.store, job.destinations)
    deployment.write_job(*arguments, policy="daemon-fast", schedule=schedule)
    (deployment.root / "jobs" / "broken-daemon.yaml").write_text("name: broken-daemon\nstore: [unclosed\n")
    port = free_port()
    # WHEN the daemon runs
    daemon = DaemonProcess(
        deployment,
        tmp_path / "daemon.log",
        *("--metrics-port", str(port), "--watchdog-interval", "1", "--reload-check", "1"),
    )
    daemons.append(daemon)
    # THEN it backs up, verifies and prunes by itself, as the daemon
    pruned = "SELECT count(*) FROM snapshots WHERE job = 'daemon-fast' AND pruned_at IS NOT NULL"
    wait_for(
        lambda: (
            count_runs(deployment, "daemon-fast", "backup", "succeeded") >= 2
            and count_runs(deployment, "daemon-fast", "verify", "succeeded") >= 1
            and catalog_rows(deployment, pruned)[0][0] >= 1
        ),
        120,
        "backups, verifications and a prune that removed a snapshot",
        daemon.output,
    )
    assert all(actor.startswith("daemon@") for _, _, actor in runs_of(deployment, "daemon-fast", "backup"))
    assert "job 'broken-daemon' disabled" in daemon.output(), "a broken job file disables that job only"
    # WHEN the job's schedules are switched off (the daemon notices the changed file) and the work settles
    deployment.write_job(*arguments, policy="daemon-fast", schedule={"backup": "off", "verify": "off", "prune": "off"})
    wait_for(lambda: "re-reading jobs and policies" in daemon.output(), 30, "the reload")
    # AND a second daemon on the same state directory is refused, while --reload reaches the running one
    second = deployment.replica("daemon")
    assert second.returncode == 2 and "a daemon already runs" in second.stderr
    reload = deployment.replica("daemon", "--reload")
    assert_ok(reload)
    assert f"pid {daemon.process.pid}" in reload.stdout
    wait_for(lambda: daemon.output().count("re-reading jobs and policies") == 2, 10, "the SIGHUP reload")
    wait_for(
        lambda: not catalog_rows(deployment, "SELECT id FROM runs WHERE job = 'daemon-fast' AND status = 'running'"),
        60,
        "the running work to end",
    )
    time.sleep(2.5)  # two watchdog ticks refresh the metrics after the last run
    # THEN /metrics shows the same RPO and RTO as `replica status --json`
    metrics = scrape(port)
    status = next(job for job in deployment.replica_json("status")["jobs"] if job["job"] == "daemon-fast")
    labels = (("job", "daemon-fast"),)
    assert metrics[("replica_rto_seconds", labels)] == pytest.approx(status["rto_seconds"])
    assert metrics[("replica_rto_objective_seconds", labels)] == status["rto_objective_seconds"] == 600
    assert metrics[("replica_rpo_objective_seconds", labels)] == status["rpo_objective_seconds"] == 3600
    assert metrics[("replica_rpo_seconds", labels)] == pytest.approx(status["rpo_seconds"], abs=3)
    assert metrics[("replica_daemon_up", ())] == 1
    assert metrics[("replica_broken_job_files", ())] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
    # AND SIGTERM stops it cleanly, with nothing left running
    assert daemon.terminate() == 0
    assert not catalog_rows(deployment, "SELECT id FROM runs WHERE status = 'running'")
    assert not (deployment.state_dir / "daemon.pid").exists()
    no_daemon = deployment.replica("daemon", "--reload")
    assert no_daemon.returncode == 2 and "no daemon runs" in no_daemon.stderr


def test_a_daemon_killed_mid_backup_leaves_an_abandoned_run_and_its_successor_runs_the_work_once(
    deployment: Deployment, initialised: dict[str, InitialisedJob], tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # GIVEN an hourly backup that has never run, a verify every 2 s, and a daemon in the middle of the backup
    job = initialised["killed"]
    deployment.write_policy("daily", rpo="2d")  # a daily backup meets no shorter RPO: config validation says so
    deployment.write_job(
        "killed", job.store, job.destinations, policy="daily", schedule={"backup": "every 1d", "verify": "every 2s"}
    )
    slow = slow_restic(tmp_path / "slow-bin", "backup", 60)
    first = DaemonProcess(
        deployment, tmp_path / "first.log", env=deployment.environment(REPLICA_RESTIC_BINARY=str(slow))
    )
    daemons.append(first)
    wait_for((slow.parent / "pids").exists, 60, "the backup to start")
    # THEN the verify triggers meanwhile are skipped with the holder named, and so is a backup started by hand
    skipped = "SELECT error FROM runs WHERE job = 'killed' AND kind = 'verify' AND status = 'skipped'"
    reasons = wait_for(lambda: catalog_rows(deployment, skipped), 30, "a skipped verify", first.output)
    assert reasons[0][0].startswith("job 'killed' is busy: backup run "), reasons
    by_hand = deployment.replica("backup", "killed")
    assert by_hand.returncode == 6
    assert "replica: error: job 'killed' is busy: backup run" in by_hand.stderr
    # WHEN the daemon is killed with SIGKILL (and its orphaned restic with it, as a reboot would)
    first.kill()
    for pid in (slow.parent / "pids").read_text().split():
        os.kill(int(pid), signal.SIGKILL)
    # (the refused backup by hand is an error of the command, not a run)
    assert [status for _, status, _ in runs_of(deployment, "killed", "backup")] == ["running"]
    # AND a new daemon starts
    second = DaemonProcess(deployment, tmp_path / "second.log")
    daemons.append(second)
    # THEN the dead run is marked abandoned, the missed backup runs once, and the verify follows it
    wait_for(
        lambda: count_runs(deployment, "killed", "verify", "succeeded") >= 1,
        60,
        "the missed backup and a verify",
        second.output,
    )
    assert [status for _, status, _ in runs_of(deployment, "killed", "backup")] == ["abandoned", "succeeded"]
    assert second.terminate() == 0
    assert not catalog_rows(deployment, "SELECT id FROM runs WHERE job = 'killed' AND status = 'running'")


def test_sigterm_during_a_verify_ends_within_the_grace_period_and_cleans_the_scratch_target(
    deployment: Deployment, initialised: dict[str, InitialisedJob], tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # GIVEN a backed-up job whose scheduled verify is in the middle of its restore
    job = initialised["stopped-verify"]
    deployment.write_job("stopped-verify", job.store, job.destinations, schedule={"verify": "every 1d"})
    assert_ok(deployment.replica("backup", "stopped-verify"))
    slow = slow_restic(tmp_path / "slow-bin", "restore", 120)
    daemon = DaemonProcess(
        deployment, tmp_path / "daemon.log", "--grace", "2", env=deployment.environment(REPLICA_RESTIC_BINARY=str(slow))
    )
    daemons.append(daemon)
    wait_for((slow.parent / "pids").exists, 60, "the restore to start")
    scratch = deployment.state_dir / "scratch"
    assert any(scratch.iterdir()), "the restore has a scratch target"
    # WHEN the daemon gets SIGTERM
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = daemon.process.wait(DAEMON_STOP_SECONDS)
    # THEN it ends soon after the 2 s grace period (SIGINT to restic, no SIGKILL needed), exit 0
    assert code == 0, daemon.output()
    assert time.monotonic() - started < 2 + 5
    # AND the verify run is interrupted (not failed: the data is not to blame), with no report and no scratch left
    assert catalog_rows(
        deployment, "SELECT status, error FROM runs WHERE job = 'stopped-verify' AND kind = 'verify'"
    ) == [("interrupted", "interrupted: restic stopped while replica was stopping")]
    assert catalog_rows(deployment, "SELECT count(*) FROM reports WHERE job = 'stopped-verify'") == [(0,)]
    assert not any(scratch.iterdir())


class PingRecorder(http.server.ThreadingHTTPServer):
    """A local dead-man service that records the path of every ping."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *arguments: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/check-uuid"


def test_two_run_due_started_at_once_never_run_a_job_twice(
    deployment: Deployment, initialised: dict[str, InitialisedJob]
) -> None:
    # GIVEN a job whose backup is due, with a dead-man ping
    pings = PingRecorder()
    job = initialised["due"]
    deployment.write_policy("daily", rpo="2d")  # a daily backup meets no shorter RPO: config validation says so
    deployment.write_job(
        "due", job.store, job.destinations, policy="daily", schedule={"backup": "every 1d"}, ping_url=pings.url
    )
    before = deployment.replica_json("schedule")["work"]
    assert [(w["job"], w["kind"], w["schedule"], w["due"], w["last_started"]) for w in before] == [
        ("due", "backup", "every 1d", True, None)
    ]
    # WHEN two run-due processes start at the same moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "replica", "run-due"],
            env=deployment.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=deployment.root,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    # THEN the job is backed up exactly once; the other call found it busy (a skipped run) or already done
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert count_runs(deployment, "due", "backup", "succeeded") == 1, outputs
    assert {status for _, status, _ in runs_of(deployment, "due", "backup")} <= {"succeeded", "skipped"}
    # AND the dead-man service heard the start and the success of that one backup
    assert pings.paths == ["/ping/check-uuid/start", "/ping/check-uuid"]
    # AND a later call finds nothing due
    later = deployment.replica("run-due")
    assert_ok(later)
    assert "backup of 'due'" not in later.stdout
    assert count_runs(deployment, "due", "backup", "succeeded") == 1
    (after,) = deployment.replica_json("schedule")["work"]
    assert not after["due"]
    next_run, last_started = datetime.fromisoformat(after["next_run"]), datetime.fromisoformat(after["last_started"])
    assert last_started < next_run <= last_started + timedelta(days=1)
    assert (next_run.hour, next_run.minute, next_run.second) == (0, 0, 0), "daily grid: midnight UTC"
    pings.shutdown()


def test_a_job_past_its_rpo_raises_one_alert_and_one_report_and_the_breach_clears_when_backups_resume(
    deployment: Deployment, initialised: dict[str, InitialisedJob]
) -> None:
    # GIVEN a job with a 12-second RPO, verified once, and no backup schedule (backups "stopped")
    deployment.write_policy("tight-rpo", rpo="12s", rto="10m", verification={"read_data_subset": "100%"})
    job = initialised["watched"]
    deployment.write_job("watched", job.store, job.destinations, policy="tight-rpo")
    assert_ok(deployment.replica("backup", "watched"))
    assert_ok(deployment.replica("verify", "watched"))
    within = deployment.replica("run-due")
    assert_ok(within)
    assert "RPO of 'watched'" not in within.stdout
    # WHEN the RPO passes and run-due is called twice
    taken_at = catalog_rows(deployment, "SELECT max(taken_at) FROM snapshots WHERE job = 'watched'")[0][0]
    time.sleep(max(0.0, _epoch(taken_at) + 13 - time.time()))
    first = deployment.replica("run-due")
    second = deployment.replica("run-due")
    # THEN exactly one breach is opened, with one alert and one risk report
    assert_ok(first)
    assert_ok(second)
    assert "RPO of 'watched' opened" in first.stdout, first.stdout
    assert "ALERT:" in first.stderr
    assert "RPO of 'watched'" not in second.stdout
    assert "ALERT:" not in second.stderr
    breaches = catalog_rows(
        deployment, "SELECT objective, cleared_at, report_id FROM breaches WHERE job = 'watched' ORDER BY id"
    )
    assert len(breaches) == 1 and breaches[0][0] == "rpo" and breaches[0][1] is None
    report_id = breaches[0][2]
    reports = deployment.replica_json("reports", "--job", "watched")
    assert [report["id"] for report in reports] == [report_id]
    report_text = Path(reports[0]["markdown_path"]).read_text()
    assert "watched" in report_text and "Client A" in report_text
    assert deployment.password_file.read_text() not in report_text
    # WHEN backups resume (a backup and a verification) and run-due looks again
    assert_ok(deployment.replica("backup", "watched"))
    assert_ok(deployment.replica("verify", "watched"))
    cleared = deployment.replica("run-due")
    # THEN the breach is recorded as cleared, and no new one is opened
    assert_ok(cleared)
    assert "RPO of 'watched' cleared" in cleared.stdout, cleared.stdout
    breaches = catalog_rows(deployment, "SELECT cleared_at FROM breaches WHERE job = 'watched'")
    assert len(breaches) == 1 and breaches[0][0] is not None


def _epoch(sqlite_timestamp: str) -> float:
    moment = datetime.fromisoformat(sqlite_timestamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
