"""Distributed execution end to end: daemons with the celery executor and `replica worker` processes, each a real
process, on a PostgreSQL catalog and a RabbitMQ broker of this machine, with real restic and moto's S3 server.

The broker is a virtual host of its own per module, reached as a user whose password is a secret canary: the
deployment's teardown proves it never reaches a log, a command line or the catalog.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import Deployment, assert_ok
from tests.e2e.test_daemon import DaemonProcess, directory_store, wait_for

POSTGRESQL_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
RABBITMQ = "127.0.0.1:5672"


class WorkerProcess:
    """`replica worker` in its own process, with its log in a file."""

    def __init__(self, deployment: Deployment, log: Path, name: str, environment: dict[str, str]) -> None:
        self.name = name
        self.log = log
        deployment.log_files.append(log)  # swept for secrets at teardown
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "replica", "worker", "--name", name, "--concurrency", "2"],
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


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def distributed(deployment: Deployment) -> Iterator[dict[str, str]]:
    """The environment of a distributed deployment: a fresh PostgreSQL catalog, a RabbitMQ virtual host and user
    of its own (the password a canary), dropped at teardown."""
    suffix = secrets.token_hex(4)
    database, vhost, user = f"replica_e2e_distributed_{suffix}", f"replica-e2e-{suffix}", f"replica-e2e-{suffix}"
    password = f"canary-broker-{secrets.token_hex(8)}"
    deployment.extra_secrets.append(password)
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("add_user", user, password)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield {
            "REPLICA_CATALOG_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "REPLICA_BROKER_URL": f"amqp://{user}:{password}@{RABBITMQ}/{vhost}",
        }
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        _rabbitmqctl("delete_user", user)
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


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
