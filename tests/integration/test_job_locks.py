"""The per-job run lock and the run bookkeeping of the daemon, on a real SQLite catalog shared by processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from replica.catalog.database import open_catalog
from replica.catalog.locks import JobLocks
from replica.catalog.models import JobLock, Run
from replica.catalog.records import ABANDONED, INTERRUPTED, RUNNING, SKIPPED, Catalog, utc_now
from replica.errors import JobBusy


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    return Catalog(open_catalog(catalog_url))


def _alive(pid: int) -> bool:
    return pid == os.getpid()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_held_job_is_busy_and_names_its_holder(catalog: Catalog) -> None:
    locks = JobLocks(catalog.sessions)
    token = locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=_alive)
    locks.attach_run("billing", token, 41)

    with pytest.raises(JobBusy, match=r"job 'billing' is busy: backup run 41 of process \d+ on h1 since"):
        locks.acquire("billing", "verify", host="h1", pid=os.getpid(), is_alive=_alive)

    locks.release("billing", token)
    second = locks.acquire("billing", "verify", host="h1", pid=os.getpid(), is_alive=_alive)
    assert second != token


def test_locks_are_per_job(catalog: Catalog) -> None:
    locks = JobLocks(catalog.sessions)
    locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=_alive)
    assert locks.acquire("uploads", "backup", host="h1", pid=os.getpid(), is_alive=_alive)


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(catalog: Catalog) -> None:
    locks = JobLocks(catalog.sessions)
    dead = _dead_pid()
    stale_token = locks.acquire("billing", "backup", host="h1", pid=dead, is_alive=_alive)

    token = locks.acquire("billing", "verify", host="h1", pid=os.getpid(), is_alive=_alive)

    holder = locks.holder("billing")
    assert holder is not None
    assert (holder.token, holder.pid, holder.kind) == (token, os.getpid(), "verify")
    # The dead holder's late release must not free the new holder's lock.
    locks.release("billing", stale_token)
    assert locks.holder("billing") is not None


def test_a_lock_from_another_host_counts_until_its_heartbeat_is_stale(catalog: Catalog) -> None:
    locks = JobLocks(catalog.sessions, stale_after=timedelta(minutes=10))
    locks.acquire("billing", "backup", host="other-host", pid=1, is_alive=_alive)

    with pytest.raises(JobBusy, match="on other-host"):
        locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=_alive)

    with catalog.sessions.begin() as session:
        session.execute(update(JobLock).values(heartbeat_at=utc_now() - timedelta(minutes=11)))
    assert locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=_alive)


def test_a_heartbeat_fails_once_the_lock_was_taken_over(catalog: Catalog) -> None:
    locks = JobLocks(catalog.sessions)
    dead = _dead_pid()
    old = locks.acquire("billing", "backup", host="h1", pid=dead, is_alive=_alive)
    assert locks.heartbeat("billing", old)
    locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=_alive)
    assert not locks.heartbeat("billing", old)


def _race(url: str, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue[str]) -> None:
    locks = JobLocks(open_catalog(url))
    start.wait()
    try:
        locks.acquire("billing", "backup", host="h1", pid=os.getpid(), is_alive=lambda pid: True)
        results.put("won")
    except JobBusy:
        results.put("busy")


def test_of_processes_racing_for_one_job_exactly_one_wins(catalog_url: str, catalog: Catalog) -> None:
    context = multiprocessing.get_context("fork")
    start = context.Event()
    results: multiprocessing.Queue[str] = context.Queue()
    racers = [context.Process(target=_race, args=(catalog_url, start, results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    start.set()
    for racer in racers:
        racer.join(30)

    outcomes = sorted(results.get(timeout=5) for _ in racers)
    assert outcomes == ["busy", "busy", "busy", "won"]


def test_dead_running_runs_are_marked_abandoned_and_live_ones_left_alone(catalog: Catalog) -> None:
    live = catalog.start_run("billing", "backup", phase="dump")
    dead = catalog.start_run("uploads", "verify", phase="restore")
    dead_pid = _dead_pid()
    with catalog.sessions.begin() as session:
        session.execute(update(Run).where(Run.id == dead).values(pid=dead_pid))
    host = catalog.run(live).host  # type: ignore[union-attr]

    swept = catalog.mark_abandoned(host=host, is_alive=lambda pid: pid != dead_pid)

    assert [run.id for run in swept] == [dead]
    assert catalog.run(dead).status == ABANDONED  # type: ignore[union-attr]
    assert "died while the run was in phase 'restore'" in (catalog.run(dead).error or "")  # type: ignore[union-attr]
    assert catalog.run(live).status == RUNNING  # type: ignore[union-attr]


def test_skipped_and_interrupted_runs_do_not_count_as_completed(catalog: Catalog) -> None:
    finished = catalog.start_run("billing", "backup", phase="dump")
    catalog.finish_run(finished, succeeded=True)
    completed_at = catalog.run(finished).started_at  # type: ignore[union-attr]
    catalog.record_skipped("billing", "backup", "job 'billing' is busy: verify run 3")
    cut = catalog.start_run("billing", "backup", phase="dump")
    host = catalog.run(cut).host  # type: ignore[union-attr]
    interrupted = catalog.interrupt_running(host=host, pid=os.getpid(), reason="interrupted: the daemon stopped")

    assert [run.id for run in interrupted] == [cut]
    assert catalog.run(cut).status == INTERRUPTED  # type: ignore[union-attr]
    assert catalog.runs(job="billing")[1].status == SKIPPED
    assert catalog.last_started("billing", "backup", ("succeeded", "failed")) == completed_at
    # The interrupted backup is newer than the completed one: the backup is due again at once.
    assert catalog.last_completed_by_work() == {("billing", "backup"): None}


def test_work_counts_from_its_last_completed_run_and_an_interrupted_copy_makes_its_backup_due(
    catalog: Catalog,
) -> None:
    backup = catalog.start_run("billing", "backup", phase="dump")
    catalog.finish_run(backup, succeeded=True)
    backup_started = catalog.run(backup).started_at  # type: ignore[union-attr]
    verify = catalog.start_run("billing", "verify", phase="check")
    catalog.finish_run(verify, succeeded=False)
    catalog.record_skipped("billing", "verify", "busy")
    assert catalog.last_completed_by_work() == {
        ("billing", "backup"): backup_started,
        ("billing", "verify"): catalog.run(verify).started_at,  # type: ignore[union-attr]
    }
    copy = catalog.start_run("billing", "copy", phase="copy", parent_run_id=backup)
    catalog.finish_run(copy, succeeded=False, status=INTERRUPTED, error="interrupted")
    assert catalog.last_completed_by_work("billing")[("billing", "backup")] is None


def test_a_lock_naming_our_pid_that_we_do_not_hold_is_an_earlier_process_and_is_taken_over(
    catalog: Catalog,
) -> None:
    # GIVEN a lock row left by an earlier process that had our pid (a container restarted as pid 1)
    now = utc_now()
    with catalog.sessions.begin() as session:
        session.add(
            JobLock(
                job="billing",
                token="0" * 32,
                kind="backup",
                host="h1",
                pid=os.getpid(),
                acquired_at=now,
                heartbeat_at=now,
            )
        )
    locks = JobLocks(catalog.sessions)
    # WHEN this process takes the job
    token = locks.acquire("billing", "verify", host="h1", pid=os.getpid(), is_alive=lambda pid: True)
    # THEN it is not mistaken for our own live lock
    assert locks.holder("billing").token == token  # type: ignore[union-attr]
    # AND a lock we do hold stays ours
    with pytest.raises(JobBusy):
        locks.acquire("billing", "prune", host="h1", pid=os.getpid(), is_alive=lambda pid: True)


def test_a_running_row_naming_our_pid_but_not_started_by_us_is_abandoned(catalog: Catalog) -> None:
    ours = catalog.start_run("billing", "backup", phase="dump")
    host = catalog.run(ours).host  # type: ignore[union-attr]
    with catalog.sessions.begin() as session:
        left = Run(
            job="billing",
            kind="verify",
            status=RUNNING,
            phase="restore",
            started_at=utc_now(),
            host=host,
            pid=os.getpid(),
            actor="daemon@old",
            details={},
        )
        session.add(left)
        session.flush()
        left_id = left.id

    swept = catalog.mark_abandoned(host=host, is_alive=lambda pid: True)

    assert [run.id for run in swept] == [left_id]
    assert catalog.run(ours).status == RUNNING  # type: ignore[union-attr]


def test_a_point_in_time_restore_holds_the_jobs_lock_throughout(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replica.actions import point_in_time
    from replica.stores.base import Target

    context = SimpleNamespace(catalog=catalog)
    plan = point_in_time.PointInTimePlan(
        "billing", "primary", "snap", "/billing.base.tar", {}, Target("data directory /x"), None, False, False, "pg"
    )
    locks = JobLocks(catalog.sessions)
    held_during: list[str | None] = []

    def restore(context: object, plan: object) -> str:
        holder = locks.holder("billing")
        held_during.append(holder.kind if holder else None)
        return "restored"

    monkeypatch.setattr(point_in_time, "_run_point_in_time", restore)
    assert point_in_time.run_point_in_time(context, plan) == "restored"  # type: ignore[arg-type]
    assert held_during == ["restore"] and locks.holder("billing") is None
    # A prune (or any run) holding the job keeps the restore out.
    token = locks.acquire("billing", "prune", host="other-host", pid=1, is_alive=_alive)
    with pytest.raises(JobBusy, match="job 'billing' is busy: prune"):
        point_in_time.run_point_in_time(context, plan)  # type: ignore[arg-type]
    assert held_during == ["restore"]
    locks.release("billing", token)
