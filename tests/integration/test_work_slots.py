"""Claims on dispatched slots, on both catalog databases: however often a slot's task arrives, it runs once; a
slot whose claimant died runs again once; a slot already covered or settled is not run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from replica.catalog.actor import for_slot
from replica.catalog.database import open_catalog
from replica.catalog.models import Run
from replica.catalog.records import ABANDONED, RUNNING, SUCCEEDED, Catalog
from replica.catalog.work_slots import ALREADY_COVERED, DUPLICATE, GIVE_UP, RUN, Claim, WorkSlots

SLOT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    return Catalog(open_catalog(catalog_url))


def test_a_slot_is_claimed_once_then_again_once_after_its_claimant_died_then_given_up(catalog: Catalog) -> None:
    slots = catalog.work_slots
    first = slots.claim("billing", "backup", SLOT, worker="worker:a", covered_since=None)
    assert (first.verdict, first.attempt, first.previous) == (RUN, 1, None)
    # The claim is still `running` when the next delivery finds the job's lock free: its claimant is gone.
    second = slots.claim("billing", "backup", SLOT, worker="worker:b", covered_since=None)
    assert (second.verdict, second.attempt) == (RUN, 2)
    assert second.previous is not None and "worker:a" in second.previous
    third = slots.claim("billing", "backup", SLOT, worker="worker:c", covered_since=None)
    assert third.verdict == GIVE_UP
    row = slots.get("billing", "backup", SLOT)
    assert row is not None and (row.state, row.attempts, row.worker) == ("given-up", 2, "worker:b")
    assert slots.claim("billing", "backup", SLOT, worker="worker:d", covered_since=None).verdict == DUPLICATE


def test_a_finished_slot_names_its_run_and_is_a_duplicate_for_later_deliveries(catalog: Catalog) -> None:
    slots = catalog.work_slots
    assert slots.claim("billing", "backup", SLOT, worker="worker:a", covered_since=None).verdict == RUN
    with for_slot(SLOT):
        run_id = catalog.start_run("billing", "backup", phase="start")
        catalog.start_run("billing", "copy", phase="start", parent_run_id=run_id)
    catalog.finish_run(run_id, succeeded=True)
    slots.finish("billing", "backup", SLOT, 1, "succeeded: snapshot 1234")
    row = slots.get("billing", "backup", SLOT)
    assert row is not None and (row.state, row.run_id) == ("done", run_id)
    later = slots.claim("billing", "backup", SLOT, worker="worker:b", covered_since=None)
    assert later.verdict == DUPLICATE and later.previous is not None and "done" in later.previous
    run = catalog.run(run_id)
    assert run is not None and run.slot == SLOT and run.status == SUCCEEDED


def test_a_slot_that_a_later_run_covers_is_not_run(catalog: Catalog) -> None:
    slots = catalog.work_slots
    claim = slots.claim("billing", "prune", SLOT, worker="worker:a", covered_since=SLOT + timedelta(seconds=3))
    assert claim.verdict == ALREADY_COVERED
    row = slots.get("billing", "prune", SLOT)
    assert row is not None and row.state == "covered"
    # A run that started before the slot's time does not cover it.
    earlier = SLOT + timedelta(minutes=1)
    assert slots.claim("billing", "prune", earlier, worker="worker:a", covered_since=SLOT).verdict == RUN


def test_a_superseded_slot_is_recorded_unless_it_was_claimed(catalog: Catalog) -> None:
    slots = catalog.work_slots
    slots.supersede("billing", "verify", SLOT, worker="worker:a", detail="job busy until the next slot")
    row = slots.get("billing", "verify", SLOT)
    assert row is not None and row.state == "superseded"
    claimed = SLOT + timedelta(hours=1)
    assert slots.claim("billing", "verify", claimed, worker="worker:a", covered_since=None).verdict == RUN
    slots.supersede("billing", "verify", claimed, worker="worker:b", detail="busy")
    row = slots.get("billing", "verify", claimed)
    assert row is not None and (row.state, row.worker) == ("running", "worker:a")


def test_each_attempt_of_a_slot_is_granted_to_one_of_racing_claims(catalog: Catalog) -> None:
    slots = WorkSlots(catalog.sessions)
    start = threading.Barrier(4)
    claims: list[Claim] = []

    def claim(worker: str) -> None:
        start.wait()
        claims.append(slots.claim("billing", "backup", SLOT, worker=worker, covered_since=None))

    threads = [threading.Thread(target=claim, args=(f"worker:{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # In real use the job's lock keeps claims apart; even without it, the primary key and the compare-and-swap on the
    # attempt count grant the first attempt to exactly one claim and no attempt twice.
    granted = sorted(found.attempt for found in claims if found.verdict == RUN)
    assert len(claims) == 4 and granted[:1] == [1] and len(granted) == len(set(granted))
    row = slots.get("billing", "backup", SLOT)
    assert row is not None and row.attempts == max(granted)


def test_only_the_running_runs_of_the_dead_slot_are_abandoned(catalog: Catalog) -> None:
    with for_slot(SLOT):
        dead = catalog.start_run("billing", "backup", phase="upload")
        dead_copy = catalog.start_run("billing", "copy", phase="copy", parent_run_id=dead)
        finished = catalog.start_run("billing", "prune", phase="start")
    catalog.finish_run(finished, succeeded=True)
    other_slot = catalog.start_run("billing", "backup", phase="upload")
    abandoned = catalog.abandon_slot_runs("billing", SLOT, "the worker running it died")
    assert sorted(run.id for run in abandoned) == [dead, dead_copy]
    with catalog.sessions() as session:
        statuses = {run.id: run.status for run in session.query(Run).all()}
    assert statuses == {dead: ABANDONED, dead_copy: ABANDONED, finished: SUCCEEDED, other_slot: RUNNING}
