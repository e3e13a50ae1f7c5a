"""Where a physical verification recovers to: a random moment in the window, clear of every canary's write, with
the newest canary before it as the one that must come back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from replica.actions.proving import ExpectedData
from replica.actions.verify_physical import aim_at, without_canary
from replica.policy.recovery_target import CLEARANCE_SECONDS, choose_recovery_target
from replica.stores.base import Canary

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_targets_fall_in_the_window_clear_of_canaries_with_the_newest_canary_before_them() -> None:
    canaries = [
        Canary(1, START - timedelta(seconds=30)),
        *(Canary(n, START + timedelta(seconds=10 * n)) for n in (2, 3, 4)),
    ]
    end = START + timedelta(seconds=45)
    draw = random.Random(7)
    seen = set()
    for _ in range(200):
        chosen = choose_recovery_target(START, end, canaries, draw)
        assert chosen is not None
        target, before = chosen
        assert START <= target < end
        assert all(abs((target - c.written_at).total_seconds()) >= CLEARANCE_SECONDS for c in canaries)
        assert before == max((c for c in canaries if c.written_at < target), key=lambda c: c.written_at)
        seen.add(before.run_id)
    # Random over the whole window: every canary's stretch gets chosen.
    assert seen == {1, 2, 3, 4}


def test_no_target_when_the_window_is_empty_or_all_of_it_is_too_close_to_a_canary() -> None:
    draw = random.Random(1)
    assert choose_recovery_target(START, START, [], draw) is None
    crowded = [Canary(1, START + timedelta(seconds=1))]
    assert choose_recovery_target(START, START + timedelta(seconds=2), crowded, draw) is None


def test_a_window_without_canaries_has_no_canary_to_find() -> None:
    chosen = choose_recovery_target(START, START + timedelta(minutes=5), [], random.Random(3))
    assert chosen is not None and chosen[1] is None


def _expected(canary: Canary | None) -> ExpectedData:
    fingerprint = {"mode": "physical"} | ({"canary": canary.as_document()} if canary else {})
    return ExpectedData("snap", "/pitr.base.tar", fingerprint)


def test_a_verify_soon_after_the_backup_recovers_to_the_end_and_expects_its_own_canary() -> None:
    # The reviewer's case: the backup's canary 1 s before its end, the verify's canary 3 s after: no target fits.
    backup_canary = Canary(7, START - timedelta(seconds=1))
    written = Canary(8, START + timedelta(seconds=3))
    chosen = choose_recovery_target(START, written.written_at, [backup_canary, written], random.Random(1))
    assert chosen is None
    target, expected = aim_at(_expected(backup_canary), written, chosen)
    assert target is None and Canary.from_document(expected.fingerprint["canary"]) == written


def test_a_chosen_target_expects_the_newest_canary_before_it() -> None:
    backup_canary = Canary(7, START - timedelta(seconds=1))
    before = Canary(8, START + timedelta(seconds=20))
    moment = START + timedelta(seconds=30)
    target, expected = aim_at(_expected(backup_canary), Canary(9, START + timedelta(seconds=60)), (moment, before))
    assert target == moment and Canary.from_document(expected.fingerprint["canary"]) == before
    unchanged = _expected(None)
    assert aim_at(unchanged, Canary(9, START), (moment, None)) == (moment, unchanged)


def test_without_confirmed_archiving_no_canary_is_compared() -> None:
    expected = without_canary(_expected(Canary(7, START)))
    assert "canary" not in expected.fingerprint and expected.fingerprint["mode"] == "physical"
