"""The scheduling lead on a real catalog engine: an flock beside a SQLite file, an advisory lock on PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from replica.daemon.leadership import LEADER_LOCK_KEY, Leadership, leadership_for

TAKEOVER_SECONDS = 5.0
# A process that takes the lead, says so, and holds it until killed.
HOLDER = (
    "import sys, time\n"
    "from replica.daemon.leadership import leadership_for\n"
    "lead = leadership_for(sys.argv[1])\n"
    "print('held' if lead.try_acquire() else 'refused', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def leads(catalog_url: str) -> Iterator[Callable[[], Leadership]]:
    """Make leads on the test's catalog; each is released at teardown."""
    made: list[Leadership] = []

    def make() -> Leadership:
        made.append(leadership_for(catalog_url))
        return made[-1]

    yield make
    for lead in made:
        lead.release()


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    """Return True as soon as `condition()` is, False if it is not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_one_of_two_leads_until_it_releases_the_lead(leads: Callable[[], Leadership]) -> None:
    # GIVEN two daemons' leads on one catalog
    first, second = leads(), leads()
    # WHEN both try THEN exactly one holds it, and keeps it
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.try_acquire() and first.still_held()
    assert not second.still_held()
    # WHEN the holder releases it THEN the other takes it, and the first no longer can
    first.release()
    assert second.try_acquire() and second.still_held()
    assert not first.try_acquire()
    assert not first.still_held()


def test_a_holder_killed_with_sigkill_frees_the_lead_within_seconds(
    catalog_url: str, leads: Callable[[], Leadership]
) -> None:
    # GIVEN another process holding the lead
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, catalog_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held", holder.stderr.read() if holder.stderr else ""
        standby = leads()
        assert not standby.try_acquire()
        # WHEN it is killed with no chance to release anything
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        # THEN the standby takes the lead within a few seconds
        assert poll(standby.try_acquire, TAKEOVER_SECONDS)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_terminated_lead_connection_is_noticed_and_another_daemon_takes_the_lead(
    postgresql_catalog_url: str,
) -> None:
    # GIVEN a daemon holding the lead on a PostgreSQL catalog, and a standby
    leader, standby = leadership_for(postgresql_catalog_url), leadership_for(postgresql_catalog_url)
    try:
        assert leader.try_acquire()
        assert not standby.try_acquire()
        # WHEN the server ends the leader's session (a failover, an administrator, a dead peer noticed)
        database = make_url(postgresql_catalog_url).database
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = %s::oid AND objid = %s::oid",
                (LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF),
            ).fetchall()
        assert ended == [(True,)]
        # THEN the leader finds the lead lost, for good, and the standby takes it
        assert not leader.still_held()
        assert not leader.try_acquire(), "a lost lead is never taken again by the same object"
        assert poll(standby.try_acquire, TAKEOVER_SECONDS)
        assert standby.still_held()
    finally:
        leader.release()
        standby.release()
