"""Two real `replica daemon` processes on one PostgreSQL catalog: one leads, the other takes over when it dies."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import Deployment
from tests.e2e.daemons import DaemonProcess, wait_for
from tests.support.catalogs import POSTGRESQL_URL_PREFIX, postgresql_database

PERIOD_SECONDS = 5
TAKEOVER_SECONDS = 30


@pytest.fixture
def catalog_url() -> Iterator[str]:
    with postgresql_database("replica_e2e_lead") as database:
        yield f"{POSTGRESQL_URL_PREFIX}{database}"


def prune_runs(catalog_url: str) -> list[tuple[str, str, int, float]]:
    """Return (status, destination, pid, start as Unix time) of every prune of the job (one per destination and
    schedule slot), oldest first."""
    database = make_url(catalog_url).database
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as connection:
        rows = connection.execute(
            "SELECT status, destination, pid, extract(epoch FROM started_at)::float8 FROM runs"
            " WHERE job = 'handover' AND kind = 'prune' ORDER BY id"
        ).fetchall()
    return [(status, destination, pid, started) for status, destination, pid, started in rows]


def test_when_the_leading_daemon_is_killed_the_standby_takes_over_and_runs_each_slot_once(
    deployment: Deployment, catalog_url: str, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # GIVEN a job whose prune is due every 5 s (with nothing to prune, it needs no restic), and two daemons on one
    # PostgreSQL catalog, each with its own state directory (its pid file)
    deployment.write_job(
        "handover",
        {"kind": "directory", "path": str(tmp_path)},
        deployment.two_destinations("lead"),
        schedule={"prune": "every 5s"},
    )

    def environment(state: str) -> dict[str, str]:
        return deployment.environment(REPLICA_CATALOG_URL=catalog_url, REPLICA_STATE_DIR=str(deployment.root / state))

    # (the catalog is migrated first: two daemons starting on an empty database would only wait for each other)
    status_environment = environment("state-cli")
    assert deployment.replica("status", env=status_environment).returncode == 0
    first = DaemonProcess(deployment, tmp_path / "a.log", "--watchdog-interval", "1", env=environment("state-a"))
    second = DaemonProcess(deployment, tmp_path / "b.log", "--watchdog-interval", "1", env=environment("state-b"))
    daemons.extend([first, second])
    names = {daemon: f"daemon@{socket.gethostname()}:{daemon.process.pid}" for daemon in (first, second)}

    def status() -> dict[str, Any]:
        result = deployment.replica("status", "--json", env=status_environment)
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    # THEN exactly one leads: status names it, the other stands by naming it, and the leader runs the prune
    def both_settled() -> bool:
        return "took the scheduling lead" in first.output() + second.output() and any(
            "standby:" in daemon.output() for daemon in (first, second)
        )

    wait_for(both_settled, 20, "one leader and one standby", lambda: first.output() + second.output())
    leader, standby = (first, second) if "took the scheduling lead" in first.output() else (second, first)
    assert "took the scheduling lead" not in standby.output()
    assert f"standby: {names[leader]} leads" in standby.output()
    scheduler = status()["scheduler"]
    assert (scheduler["leader"], scheduler["executor"]) == (names[leader], "local")
    wait_for(lambda: any(status == "succeeded" for status, *_ in prune_runs(catalog_url)), 20, "a prune", leader.output)
    # WHEN the leader is killed with SIGKILL (no chance to release anything)
    leader.kill()
    killed_at = time.time()
    # THEN within 30 s the standby leads: its log and status say so
    wait_for(lambda: "took the scheduling lead" in standby.output(), TAKEOVER_SECONDS, "the takeover", standby.output)
    scheduler = status()["scheduler"]
    assert scheduler["leader"] == names[standby]
    # AND it runs the job's next due prune itself
    wait_for(
        lambda: any(
            status == "succeeded" and pid == standby.process.pid and started > killed_at
            for status, _, pid, started in prune_runs(catalog_url)
        ),
        PERIOD_SECONDS + 10,
        "the new leader's prune",
        standby.output,
    )
    # AND no fire time of the schedule ran twice across the handover: each prune of a destination started after the
    # first fire time that followed the previous one's start (a late run and the next on-time run may share a 5 s
    # window; a repeat of the same fire time starts before the next one)
    runs = prune_runs(catalog_url)
    for destination in {destination for _, destination, _, _ in runs}:
        starts = [started for status, name, _, started in runs if status == "succeeded" and name == destination]
        repeated = [
            (earlier, later)
            for earlier, later in itertools.pairwise(starts)
            if later < (earlier // PERIOD_SECONDS + 1) * PERIOD_SECONDS - 0.05
        ]
        assert repeated == [], runs
    # AND `replica status` says who leads, with its executor and heartbeat
    text = deployment.replica("status", env=status_environment).stdout
    assert f"scheduler: {names[standby]} leads (local executor) since " in text
    assert standby.terminate() == 0
