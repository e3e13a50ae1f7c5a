"""What a worker does with each delivery of a task that is not a plain first run (on a real SQLite catalog, with
job files; none of these paths reaches restic or S3): a job that is not configured, a busy job (tried again later;
superseded once the next slot is due), a slot already settled or covered, a slot whose claimants died twice."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from replica.actions.context import Context
from replica.actions.dispatched import BUSY, NOT_CONFIGURED, SUPERSEDED, run_dispatched
from replica.catalog import actor
from replica.catalog.actor import for_slot
from replica.catalog.locks import JobLocks
from replica.catalog.models import Run
from replica.catalog.records import utc_now
from replica.catalog.work_slots import ALREADY_COVERED, DUPLICATE, GIVE_UP, WorkSlots
from replica.settings import Settings
from tests.integration.test_daemon_in_process import write_job


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    write_job(tmp_path, "billing", {"backup": "every 1h", "verify": "off", "prune": "off"})
    settings = Settings(
        state_dir=tmp_path / "state",
        jobs_dir=tmp_path / "jobs",
        policies_dir=tmp_path / "policies",
        # Nothing listens there: work that gets as far as S3 (a backup, a prune) fails fast, recorded as a failure.
        s3_endpoint_url="http://127.0.0.1:9",
        s3_probe_timeout_seconds=2,
    )
    yield Context(settings)
    actor.act_as(None)


def current_slot() -> datetime:
    now = utc_now()
    return now.replace(minute=0, second=0, microsecond=0)


def runs(context: Context) -> list[Run]:
    with context.catalog.sessions() as session:
        return list(session.scalars(select(Run).order_by(Run.id)).all())


def hold_elsewhere(context: Context) -> None:
    """Take the job's lock as a live process of this host that is not this one (the test runner's parent)."""
    JobLocks(context.catalog.sessions).acquire(
        "billing", "verify", host=socket.gethostname(), pid=os.getppid(), is_alive=lambda pid: True
    )


def test_a_job_that_is_not_configured_here_is_not_run(context: Context) -> None:
    outcome = run_dispatched(context, "gone", "backup", current_slot(), worker="w1")
    assert outcome.verdict == NOT_CONFIGURED and "gone" in outcome.detail and "w1" in outcome.detail
    # ... and the catalog says so (a worker whose files lag behind the daemon's must not lose slots silently)
    (skipped,) = runs(context)
    assert (skipped.job, skipped.status, skipped.slot, skipped.actor) == (
        "gone",
        "skipped",
        current_slot(),
        "worker:w1",
    )


def test_a_busy_job_is_tried_again_later_and_recorded_only_once_the_next_slot_is_due(context: Context) -> None:
    hold_elsewhere(context)
    # The current slot: busy, nothing recorded, the task is delivered again later.
    busy = run_dispatched(context, "billing", "backup", current_slot(), worker="w1")
    assert busy.verdict == BUSY and "busy" in busy.detail
    assert runs(context) == [] and context.catalog.work_slots.slots() == []
    # An older slot: the next one fell due since, which covers it: recorded skipped, the slot superseded.
    older = current_slot() - timedelta(hours=1)
    superseded = run_dispatched(context, "billing", "backup", older, worker="w1")
    assert superseded.verdict == SUPERSEDED
    (skipped,) = runs(context)
    assert (skipped.status, skipped.slot, skipped.actor) == ("skipped", older, "worker:w1")
    (slot,) = context.catalog.work_slots.slots()
    assert (slot.slot, slot.state) == (older, "superseded")


def test_a_busy_job_whose_slot_is_claimed_waits_for_it_and_a_settled_one_is_a_duplicate(context: Context) -> None:
    slot = current_slot()
    context.catalog.work_slots.claim("billing", "backup", slot, worker="worker:w0", covered_since=None)
    hold_elsewhere(context)
    # Claimed and running elsewhere: this delivery waits (the claimant may have died on another host).
    assert run_dispatched(context, "billing", "backup", slot, worker="w1").verdict == BUSY
    context.catalog.work_slots.finish("billing", "backup", slot, 1, "succeeded")
    assert run_dispatched(context, "billing", "backup", slot, worker="w1").verdict == DUPLICATE
    assert runs(context) == []


def test_a_slot_a_later_run_covers_is_not_run(context: Context) -> None:
    slot = current_slot() - timedelta(hours=2)
    with for_slot(slot + timedelta(hours=1)):
        later = context.catalog.start_run("billing", "backup", phase="start")
    context.catalog.finish_run(later, succeeded=True)
    outcome = run_dispatched(context, "billing", "backup", slot, worker="w1")
    assert outcome.verdict == ALREADY_COVERED
    assert [run.id for run in runs(context)] == [later]


def test_a_slot_whose_claimants_died_twice_is_given_up_with_a_failed_run(context: Context) -> None:
    slot = current_slot()
    slots = context.catalog.work_slots
    for worker in ("worker:w0", "worker:w1"):  # two claims, each left `running` by a worker that died
        slots.claim("billing", "backup", slot, worker=worker, covered_since=None)
    with for_slot(slot):
        dead = context.catalog.start_run("billing", "backup", phase="upload")
    outcome = run_dispatched(context, "billing", "backup", slot, worker="w2")
    assert outcome.verdict == GIVE_UP and "worker:w1" in outcome.detail
    abandoned, given_up = runs(context)
    assert (abandoned.id, abandoned.status) == (dead, "abandoned")
    assert (given_up.status, given_up.slot, given_up.actor) == ("failed", slot, "worker:w2")
    # It starts at the slot's time: a failed run starting later would cover the next slot, which must still run.
    assert given_up.started_at == slot
    assert given_up.error is not None and "given up" in given_up.error
    row = slots.get("billing", "backup", slot)
    assert row is not None and row.state == "given-up"


def test_the_job_stays_locked_until_its_slot_is_settled(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim found `running` by whoever holds the job's lock next is taken for a dead claimant's: the lock must be
    # held until the slot is settled, or a second delivery slipping in between would run the slot again.
    holders: list[str | None] = []
    finish = WorkSlots.finish

    def finish_noting_the_lock(self: WorkSlots, *arguments: Any) -> None:
        holder = JobLocks(context.catalog.sessions).holder("billing")
        holders.append(holder.kind if holder else None)
        finish(self, *arguments)

    monkeypatch.setattr(WorkSlots, "finish", finish_noting_the_lock)
    outcome = run_dispatched(context, "billing", "backup", current_slot(), worker="w1")
    assert outcome.verdict == "ran" and outcome.outcome is not None and outcome.outcome.outcome == "failed"
    assert holders == ["backup"]
    assert JobLocks(context.catalog.sessions).holder("billing") is None


def test_work_that_finds_a_lock_it_needs_held_undoes_its_claim(context: Context, tmp_path: Path) -> None:
    # GIVEN another job sharing the repositories (a prune holds the locks of every job sharing one), held elsewhere
    write_job(tmp_path, "ledger", {"backup": "every 1h", "verify": "off", "prune": "off"})
    write_job(tmp_path, "billing", {"backup": "every 1h", "verify": "off", "prune": "every 1h"})
    locks = JobLocks(context.catalog.sessions)
    token = locks.acquire("ledger", "backup", host=socket.gethostname(), pid=os.getppid(), is_alive=lambda pid: True)
    # WHEN the prune's task arrives: it claims the slot, then finds the other job's lock held
    busy = run_dispatched(context, "billing", "prune", current_slot(), worker="w1")
    # THEN it is tried again later, and its claim is undone (not left for the next delivery to take for a dead one)
    assert busy.verdict == BUSY and "ledger" in busy.detail
    assert context.catalog.work_slots.slots() == []
    locks.release("ledger", token)
    again = run_dispatched(context, "billing", "prune", current_slot(), worker="w2")
    assert again.verdict == "ran"
    (slot,) = context.catalog.work_slots.slots()
    assert (slot.state, slot.attempts, slot.worker) == ("done", 1, "worker:w2")


def test_older_slots_claimed_by_dead_workers_are_settled_when_a_later_slot_runs(context: Context) -> None:
    # GIVEN a slot claimed an hour ago by a worker on another host that died mid-run (no sweep of this host ends its
    # run, and its own redelivery gave up behind the job's stale lock)
    slots = context.catalog.work_slots
    older = current_slot() - timedelta(hours=1)
    slots.claim("billing", "backup", older, worker="worker:gone", covered_since=None)
    with for_slot(older):
        dead = context.catalog.start_run("billing", "backup", phase="upload")
    # WHEN the next slot runs
    assert run_dispatched(context, "billing", "backup", current_slot(), worker="w1").verdict == "ran"
    # THEN the older claim is settled as covered by it, and the dead worker's run is abandoned
    stale = context.catalog.work_slots.get("billing", "backup", older)
    assert stale is not None and stale.state == "superseded" and "worker:gone" in (stale.detail or "")
    assert next(run for run in runs(context) if run.id == dead).status == "abandoned"
