"""Leader and standby daemons in-process on one real catalog, with fake work in place of backup/verify/prune."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url

from replica.actions.context import Context
from replica.actions.scheduled import SUCCEEDED, WorkOutcome
from replica.actions.status import collect_status
from replica.catalog import actor
from replica.cli.exit_codes import LEAD_LOST, exit_code_for
from replica.daemon.leadership import LEADER_LOCK_KEY, LOCK_FILE_SUFFIX, leadership_for
from replica.daemon.scheduler import Daemon, DaemonOptions
from replica.errors import LeadLost
from replica.settings import Settings
from tests.support.s3server import free_port

TAKEOVER_SECONDS = 10.0


STARTED: list[Daemon] = []


@pytest.fixture(autouse=True)
def _daemons_stopped_and_actor_restored() -> Iterator[None]:
    yield
    for daemon in STARTED:  # a failed test's daemons too
        daemon.stop()
    STARTED.clear()
    actor.act_as(None)  # the daemon names itself the actor of every run of the process


def settings_of(root: Path, catalog_url: str, state: str) -> Settings:
    """Return the settings of one daemon: its own state dir (pid file), a shared job folder and catalog."""
    (root / "jobs").mkdir(exist_ok=True)
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "rpo": "2d", "rto": "15m"}))
    job = {
        "name": "hourly",
        "store": {"kind": "directory", "path": str(root)},
        "destinations": [{"name": "a", "bucket": "bucket-a"}],
        "policy": "p",
        "schedule": {"backup": "every 1h"},
    }
    (root / "jobs" / "hourly.yaml").write_text(yaml.safe_dump(job))
    return Settings(
        state_dir=root / state, catalog_url=catalog_url, jobs_dir=root / "jobs", policies_dir=root / "policies"
    )


def no_work(context: Context, job: str, kind: str) -> WorkOutcome:
    return WorkOutcome(job, kind, SUCCEEDED, "done", 0.0)


class Running:
    """A daemon's run() in a thread, with what it returned or raised."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        STARTED.append(daemon)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.daemon.run()
        except BaseException as error:
            self.result = error

    def stop(self) -> Any:
        self.daemon.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_standby_answers_health_checks_and_takes_the_lead_when_the_leader_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="replica")
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    options = DaemonOptions(watchdog_interval_seconds=3600)
    # GIVEN a leading daemon
    leader = Running(Daemon(Context(settings_of(tmp_path, url, "state-a")), options, work=no_work))
    wait_until(lambda: leader.daemon.leading, 10, "the first daemon to lead")
    # WHEN a second daemon starts on the same catalog, with its own state dir and a metrics port
    port = free_port()
    standby_options = DaemonOptions(watchdog_interval_seconds=3600, metrics_port=port)
    standby = Running(Daemon(Context(settings_of(tmp_path, url, "state-b")), standby_options, work=no_work))
    # THEN it stands by, naming the leader, healthy, its metrics saying it does not lead
    wait_until(lambda: "standby:" in caplog.text, 10, "the standby's log line")
    assert f"standby: {leader.daemon.name} leads" in caplog.text
    assert get(port, "/healthz") == (200, "ok")
    assert "replica_daemon_leader 0.0" in get(port, "/metrics")[1]
    # WHEN the leader stops THEN the standby takes the lead and says so in its metrics
    assert leader.stop() == 0
    wait_until(lambda: "replica_daemon_leader 1.0" in get(port, "/metrics")[1], TAKEOVER_SECONDS, "the takeover")
    assert standby.daemon.leading
    wait_until(standby.daemon.healthy, 10, "the new leader's scheduler")
    assert get(port, "/healthz") == (200, "ok")
    assert caplog.text.count("took the scheduling lead (local executor)") == 2
    assert standby.stop() == 0


def lose_lead(catalog_url: str) -> None:
    """Take the lead away from its holder: end its PostgreSQL session, or replace the SQLite catalog's lock file."""
    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite":
        Path(f"{url.database}{LOCK_FILE_SUFFIX}").unlink()
        return
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={url.database}", autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s::oid AND objid = %s::oid",
            (LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF),
        )


def test_a_leader_that_loses_the_lead_stops_scheduling_and_exits_75(
    tmp_path: Path, catalog_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a leading daemon, recorded as the leader
    daemon = Daemon(
        Context(settings_of(tmp_path, catalog_url, "state")), DaemonOptions(watchdog_interval_seconds=3600), no_work
    )
    running = Running(daemon)
    wait_until(lambda: daemon.leading, 10, "the daemon to lead")
    leader = daemon._context.catalog.leaders.leader()
    assert leader is not None and (leader.daemon, leader.executor) == (daemon.name, "local")
    # WHEN its lock on the catalog goes away
    lose_lead(catalog_url)
    # THEN it stops by itself within a lead check or two, with LeadLost (exit 75: the supervisor restarts it)
    running.thread.join(TAKEOVER_SECONDS)
    assert not running.thread.is_alive()
    assert isinstance(running.result, LeadLost)
    assert exit_code_for(running.result) == LEAD_LOST == 75
    assert "lost the scheduling lead: stopping" in caplog.text
    assert not (tmp_path / "state" / "daemon.pid").exists()
    # AND the lead is free for a standby
    successor = leadership_for(catalog_url)
    assert successor.try_acquire()
    successor.release()


def test_status_names_the_leader_its_executor_and_its_last_heartbeat(tmp_path: Path, catalog_url: str) -> None:
    # GIVEN a catalog no daemon ever led THEN status names no leader
    context = Context(settings_of(tmp_path, catalog_url, "state"))
    leaders = context.catalog.leaders
    assert collect_status(context)["scheduler"] == {
        "leader": None,
        "executor": None,
        "since": None,
        "heartbeat_at": None,
    }
    # WHEN a daemon takes the lead, and later beats
    leaders.took_lead("daemon@host-a:41", "celery")
    taken = collect_status(context)["scheduler"]
    leaders.heartbeat("daemon@host-a:41")
    leaders.heartbeat("daemon@host-b:7")  # a deposed leader's late beat changes nothing
    beaten = collect_status(context)["scheduler"]
    # THEN status names it with its executor, since when it leads, and its newest heartbeat
    assert (taken["leader"], taken["executor"], taken["heartbeat_at"]) == ("daemon@host-a:41", "celery", taken["since"])
    assert (beaten["leader"], beaten["since"]) == ("daemon@host-a:41", taken["since"])
    assert datetime.fromisoformat(beaten["heartbeat_at"]) > datetime.fromisoformat(taken["heartbeat_at"])
    # WHEN another daemon takes over THEN it is named instead
    leaders.took_lead("daemon@host-b:7", "local")
    assert collect_status(context)["scheduler"]["leader"] == "daemon@host-b:7"
