"""Distributed execution end to end: daemons with the celery executor and `replica worker` processes, each a real
process, on a PostgreSQL catalog and a RabbitMQ broker of this machine, with real restic and moto's S3 server.

The broker is a virtual host of its own per module, reached as a user whose password is a secret canary: the
deployment's teardown proves it never reaches a log, a command line or the catalog.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.daemons import DaemonProcess, wait_for
from tests.e2e.test_daemon import _own_job_files, directory_store
from tests.support.catalogs import POSTGRESQL_URL_PREFIX, postgresql_database

# Each test's job files are removed after it: every daemon and worker reads the whole folder.
pytestmark = pytest.mark.usefixtures(_own_job_files.__name__)

RABBITMQ = "127.0.0.1:5672"


class WorkerProcess:
    """`replica worker` in its own process, with its log in a file."""

    def __init__(
        self, deployment: Deployment, log: Path, name: str, environment: dict[str, str], queues: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.log = log
        deployment.log_files.append(log)  # swept for secrets at teardown
        options = [option for queue in queues for option in ("--queue", queue)]
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "replica", "worker", "--name", name, "--concurrency", "2", *options],
                env=environment,
                stdout=output,
                stderr=output,
                cwd=deployment.root,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _rabbitmqctl(*arguments: str) -> str:
    completed = subprocess.run(
        ["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60, text=True
    )
    return completed.stdout


@pytest.fixture(scope="module")
def distributed(deployment: Deployment) -> Iterator[dict[str, str]]:
    """The environment of a distributed deployment: a fresh PostgreSQL catalog, a RabbitMQ virtual host and user
    of its own (the password a canary), dropped at teardown."""
    suffix = secrets.token_hex(4)
    vhost = user = f"replica-e2e-{suffix}"
    password = f"canary-broker-{secrets.token_hex(8)}"
    deployment.extra_secrets.append(password)
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("add_user", user, password)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        with postgresql_database("replica_e2e_distributed") as database:
            yield {
                "REPLICA_CATALOG_URL": f"{POSTGRESQL_URL_PREFIX}{database}",
                "REPLICA_BROKER_URL": f"amqp://{user}:{password}@{RABBITMQ}/{vhost}",
            }
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        _rabbitmqctl("delete_user", user)


@pytest.fixture
def processes() -> Iterator[list[DaemonProcess | WorkerProcess]]:
    started: list[DaemonProcess | WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


def rows(environment: dict[str, str], query: str, **parameters: Any) -> list[Any]:
    """Return the rows of a query on the distributed deployment's PostgreSQL catalog."""
    engine = create_engine(environment["REPLICA_CATALOG_URL"])
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query), parameters).all())
    finally:
        engine.dispose()


def test_a_worker_killed_during_a_backup_loses_nothing(
    deployment: Deployment, distributed: dict[str, str], tmp_path: Path, processes: list[Any]
) -> None:
    # GIVEN a job whose backup is due (it never ran), and one worker that dies (SIGKILL, from inside: a failpoint)
    # right after restic saved the snapshot, before the catalog is told
    job = "killed-worker"
    deployment.write_job(
        job,
        directory_store(tmp_path, "killed-store"),
        deployment.two_destinations("killedworker"),
        schedule={"backup": "every 1h", "verify": "off", "prune": "off"},
    )
    environment = deployment.environment(**distributed)
    assert_ok(deployment.replica("init", job, env=environment))
    doomed = WorkerProcess(
        deployment, tmp_path / "doomed.log", "doomed", {**environment, "REPLICA_FAILPOINTS": "backup-after-snapshot"}
    )
    processes.append(doomed)
    # WHEN the daemon sends the backup to the workers
    daemon = DaemonProcess(deployment, tmp_path / "daemon.log", "--executor", "celery", env=environment)
    processes.append(daemon)
    wait_for(lambda: doomed.process.poll() is not None, 60, "the doomed worker to die in the backup", doomed.output)
    assert doomed.process.returncode == -signal.SIGKILL
    (first,) = rows(
        environment, "SELECT id, status, actor, slot FROM runs WHERE job = :job AND kind = 'backup'", job=job
    )
    assert first.status == "running" and first.actor == "worker:doomed" and first.slot is not None
    # ... and another worker starts: the broker hands it the task the dead worker never acknowledged
    survivor = WorkerProcess(deployment, tmp_path / "survivor.log", "survivor", environment)
    processes.append(survivor)

    # THEN the dead worker's run is abandoned and the same slot runs again, once, on the other worker
    def backups() -> list[Any]:
        return rows(
            environment,
            "SELECT id, status, actor, slot, error FROM runs WHERE job = :job AND kind = 'backup' ORDER BY id",
            job=job,
        )

    def slot() -> Any:
        (found,) = rows(environment, "SELECT state, attempts, worker, run_id FROM work_slots WHERE job = :job", job=job)
        return found

    wait_for(lambda: slot().state == "done", 90, "the slot to be run again", survivor.output)
    abandoned, retried = backups()
    assert abandoned.status == "abandoned" and abandoned.actor == "worker:doomed"
    assert retried.status == "succeeded" and retried.actor == "worker:survivor" and retried.slot == first.slot
    assert (slot().attempts, slot().worker, slot().run_id) == (2, "worker:survivor", retried.id)
    # ... and the job's next verification passes (it restores the retried backup's snapshot)
    assert_ok(deployment.replica("verify", job, env=environment))
    assert daemon.terminate() == 0
    survivor.process.send_signal(signal.SIGTERM)
    assert survivor.process.wait(30) == 0


SCALE_JOBS = 30
# How long the daemons schedule; the "several minutes" is REPLICA_E2E_SCALE_SECONDS=300, run by hand (the
# note quotes it). CI runs the same scenario shorter.
SCALE_SECONDS = float(os.environ.get("REPLICA_E2E_SCALE_SECONDS", "45"))
BACKUP_EVERY = timedelta(seconds=30)
TAKEOVER_LIMIT_SECONDS = 30


def leader_pid(environment: dict[str, str]) -> int | None:
    found = rows(environment, "SELECT pid FROM scheduler_leaders")
    return found[0].pid if found else None


def test_two_daemons_and_three_workers_run_every_slot_once_across_a_leader_kill(
    deployment: Deployment, distributed: dict[str, str], tmp_path: Path, processes: list[Any]
) -> None:
    # GIVEN 30 jobs (directory stores sharing two repositories: one repository init for all) backing up every 30
    # seconds (no prune: a prune holds the lock of every job sharing its repositories), three workers, and two
    # daemons with the celery executor
    destinations = deployment.two_destinations("scale")
    jobs = [f"scale-{number:02d}" for number in range(SCALE_JOBS)]
    # ... two of which name a queue that only the third worker consumes (beside the default queue)
    routed = {jobs[1]: "special", jobs[5]: "special"}
    for job in jobs:
        schedule = {"backup": f"every {BACKUP_EVERY.seconds}s", "verify": "off", "prune": "off"}
        extra = {"queue": routed[job]} if job in routed else {}
        deployment.write_job(job, directory_store(tmp_path, job), destinations, schedule=schedule, **extra)
    environment = deployment.environment(**distributed)
    assert_ok(deployment.replica("init", jobs[0], env=environment))
    workers = [
        WorkerProcess(deployment, tmp_path / f"w{n}.log", f"w{n}", environment, queues)
        for n, queues in enumerate([(), (), ("replica", "special")])
    ]
    processes.extend(workers)
    daemons = [
        DaemonProcess(
            deployment,
            tmp_path / f"daemon-{n}.log",
            *("--executor", "celery", "--watchdog-interval", "5"),
            env={**environment, "REPLICA_STATE_DIR": str(deployment.root / f"daemon-{n}-state")},
        )
        for n in range(2)
    ]
    processes.extend(daemons)
    started = datetime.now(UTC)
    by_pid = {daemon.process.pid: daemon for daemon in daemons}
    # (the catalog names the daemon of the module's earlier test until one of these takes the lead)
    wait_for(lambda: leader_pid(environment) in by_pid, 30, "one of the daemons to lead")
    first_leader = by_pid[leader_pid(environment) or 0]
    (standby,) = [daemon for daemon in daemons if daemon is not first_leader]
    # WHEN the leading daemon is killed (SIGKILL) a third of the way through
    time.sleep(max(SCALE_SECONDS / 3 - (datetime.now(UTC) - started).total_seconds(), 0))
    first_leader.kill()
    killed_at, killed_at_utc = time.monotonic(), datetime.now(UTC)
    # THEN the standby leads within 30 s
    wait_for(
        lambda: leader_pid(environment) == standby.process.pid,
        TAKEOVER_LIMIT_SECONDS,
        "the standby to take the lead",
        standby.output,
    )
    takeover_seconds = time.monotonic() - killed_at
    time.sleep(max(SCALE_SECONDS - (datetime.now(UTC) - started).total_seconds(), 0))
    stopped = datetime.now(UTC)
    assert standby.terminate() == 0
    # ... and once the workers have drained the queue, every slot of every job's work ran once: none lost, none twice
    wait_for(lambda: _settled(environment), 180, "the workers to settle every slot")
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.process.wait(60) == 0, worker.output()
    slots = {
        (row.job, row.kind, row.slot): row.state
        for row in rows(environment, "SELECT job, kind, slot, state FROM work_slots")
    }
    first = min(slot for (job, kind, slot) in slots if kind == "backup" and job in jobs)
    # (a fire time in the last two seconds before the stop may not have been sent yet)
    expected = [
        first + BACKUP_EVERY * n for n in range(int((stopped - timedelta(seconds=2) - first) / BACKUP_EVERY) + 1)
    ]
    missing = [(job, slot) for job in jobs for slot in expected if (job, "backup", slot) not in slots]
    assert missing == [], f"slots never run: {missing[:10]} (takeover {takeover_seconds:.1f}s)"
    # Each job's first slot ran itself (nothing earlier could cover it); after the handover slots still ran.
    assert all(slots[(job, "backup", first)] == "done" for job in jobs)
    assert any(state == "done" and slot > killed_at_utc for (_, _, slot), state in slots.items())
    states = Counter(slots.values())
    assert set(states) <= {"done", "covered", "superseded"}, states
    runs = [
        run
        for run in rows(
            environment,
            "SELECT job, kind, slot, status, actor FROM runs"
            " WHERE kind = 'backup' AND parent_run_id IS NULL AND status <> 'skipped'",
        )
        if run.job in jobs
    ]
    per_slot = Counter((run.job, run.kind, run.slot) for run in runs)
    assert [key for key, count in per_slot.items() if count > 1] == []
    assert all(run.slot is not None and run.status == "succeeded" for run in runs), Counter(r.status for r in runs)
    assert {run.actor for run in runs} == {"worker:w0", "worker:w1", "worker:w2"}
    assert {run.actor for run in runs if run.job in routed} == {"worker:w2"}
    assert {run.job for run in runs} == set(jobs)
    print(f"slots: {dict(states)}; runs: {len(runs)}; takeover after {takeover_seconds:.1f}s")


def _settled(environment: dict[str, str]) -> bool:
    """Return True when the broker holds no task (ready, or delivered and not acknowledged: running, or waiting to
    be tried again), no slot is claimed and unsettled and no run is still running."""
    vhost = environment["REPLICA_BROKER_URL"].rsplit("/", 1)[1]
    queued = _rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "messages_ready", "messages_unacknowledged")
    if any(int(count) for count in queued.split()):
        return False
    claimed = rows(environment, "SELECT count(*) AS n FROM work_slots WHERE state = 'running'")[0].n
    running = rows(environment, "SELECT count(*) AS n FROM runs WHERE status = 'running'")[0].n
    return bool(claimed == 0 and running == 0)
