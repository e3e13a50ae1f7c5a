"""Where a physical verification recovers to: a random moment in the window, clear of every canary's write, with
the newest canary before it as the one that must come back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

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
