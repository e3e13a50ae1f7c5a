"""The WAL chain of each destination, where its gaps still are, what retention deletes, how the lag is defined and
how the watchdog judges it (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from replica.policy.objectives import Objectives
from replica.policy.watchdog import WAL_LAG, WatchFacts, judge_objectives
from replica.wal.chain import (
    EMPTY,
    GAPS,
    NO_BASE_BACKUP,
    OK,
    BaseBackupStart,
    base_backup_start,
    expired_names,
    judge_chain,
    last_needed_segment,
    oldest_start,
)
from replica.wal.lag import LONG_PAGE_HEADER_BYTES, RECENT_SEGMENTS, WalPosition, listing_start, measure_lag
from replica.wal.lag import newest_segment as find_newest
from replica.wal.segments import DEFAULT_SEGMENT_BYTES, Segment

SIZE = DEFAULT_SEGMENT_BYTES
NOW = datetime(2026, 11, 27, 3, 5, tzinfo=UTC)
# A base backup that started in segment 0x10 of timeline 1.
START = BaseBackupStart("base1", 0x10 * SIZE + 0x28, 1, SIZE)


def names(*numbers: int, timeline: int = 1) -> list[str]:
    return [Segment(timeline, number).name(SIZE) for number in numbers]


def test_a_complete_chain_ignores_history_files_and_segments_before_the_base_backup() -> None:
    archived = {
        "primary": [*names(0x0E, 0x0F, 0x10, 0x11, 0x12), "00000002.history", names(0x10)[0] + ".00000028.backup"]
    }

    verdict = judge_chain("primary", START, archived)

    assert (verdict.state, verdict.first, verdict.last, verdict.segments, verdict.gaps) == (OK, 0x10, 0x12, 3, [])
    assert "complete from base backup base1" in verdict.describe()


def test_a_gap_names_its_lsn_range_and_the_destination_that_has_all_of_it() -> None:
    archived = {"primary": names(0x10, 0x11, 0x14), "offsite": names(0x10, 0x11, 0x12, 0x13)}

    verdict = judge_chain("primary", START, archived)

    assert verdict.state == GAPS
    (gap,) = verdict.gaps
    assert (gap.gap.first, gap.gap.last) == (0x12, 0x13)
    assert gap.describe() == "LSN 0/12000000-0/14000000 (2 segments) missing; 'offsite' has all of it"
    assert gap.recoverable
    # The copy's own chain ends at its newest segment: it lags, it has no gap.
    assert judge_chain("offsite", START, archived).state == OK


def test_a_gap_held_in_parts_by_two_copies_names_each_part() -> None:
    archived = {
        "primary": names(0x10, 0x15),
        "offsite": names(0x11, 0x12),
        "tape": names(0x14),
    }

    (gap,) = judge_chain("primary", START, archived).gaps

    assert gap.describe() == (
        "LSN 0/11000000-0/15000000 (4 segments) missing; 'offsite' has LSN 0/11000000-0/13000000 (2 segments); "
        "'tape' has LSN 0/14000000-0/15000000 (1 segment)"
    )
    assert not gap.recoverable  # segment 0x13 is nowhere


def test_a_segment_of_another_timeline_carries_the_chain_across_a_promotion() -> None:
    archived = {"primary": [*names(0x10, 0x11), *names(0x12, 0x13, timeline=2), "00000002.history"]}

    assert judge_chain("primary", START, archived).state == OK


def test_a_chain_must_reach_the_end_of_the_newest_base_backup_or_that_backup_cannot_be_made_consistent() -> None:
    ended = replace(START, end_lsn=0x12 * SIZE + 0x100)
    needed = last_needed_segment([START, ended])

    verdict = judge_chain("primary", START, {"primary": names(0x0F, 0x10)}, needed)

    assert needed == 0x12
    assert [(gap.gap.first, gap.gap.last) for gap in verdict.gaps] == [(0x11, 0x12)]
    assert judge_chain("primary", START, {"primary": names(0x0F)}, needed).state == GAPS


def test_no_base_backup_or_nothing_archived_after_it_is_no_gap() -> None:
    assert judge_chain("primary", None, {"primary": names(1)}).state == NO_BASE_BACKUP
    assert judge_chain("primary", START, {"primary": names(0x0E, 0x0F)}).state == EMPTY


def test_the_base_backup_comes_from_the_fingerprint_and_the_oldest_start_wins() -> None:
    fingerprint = {"start_lsn": "0/11000028", "end_lsn": "0/11000100", "timeline": 1, "wal_segment_size": SIZE}
    newer = base_backup_start("base2", fingerprint)

    assert newer == BaseBackupStart("base2", 0x11000028, 1, SIZE, 0x11000100)
    assert base_backup_start("dump", {"sha256": "ab"}) is None
    with pytest.raises(ValueError, match="snapshot bad: fingerprint's start or end LSN: '-1/28' is not a log"):
        base_backup_start("bad", {**fingerprint, "start_lsn": "-1/28"})
    assert oldest_start([newer, START]) == START
    assert oldest_start([]) is None


def test_retention_deletes_older_segments_and_backup_history_files_only() -> None:
    archived = [
        *names(0x0D, 0x0E, 0x0F, 0x10, 0x11),
        names(0x0E)[0] + ".00000028.backup",
        names(0x10)[0] + ".00000028.backup",
        "00000002.history",
        "not-a-wal-file",
    ]

    expired = expired_names(archived, START.segment, SIZE)

    assert expired == sorted([*names(0x0D, 0x0E, 0x0F), names(0x0E)[0] + ".00000028.backup"])


def test_lag_is_zero_while_the_source_has_written_nothing_past_the_newest_segment() -> None:
    newest = find_newest(
        [(names(0x10)[0], NOW - timedelta(minutes=5)), (names(0x11)[0], NOW - timedelta(seconds=9))], SIZE
    )
    assert newest is not None and newest.segment == Segment(1, 0x11)
    # Right after a segment switch the insert position is past the next segment's long page header.
    switched = WalPosition(0x12 * SIZE + LONG_PAGE_HEADER_BYTES, 1, SIZE)

    assert measure_lag("primary", switched, newest, NOW).seconds == 0.0


def test_lag_past_the_newest_segment_is_the_time_since_it_was_stored() -> None:
    newest = find_newest([(names(0x11)[0], NOW - timedelta(seconds=9)), ("00000001.history", NOW)], SIZE)
    writing = WalPosition(0x12 * SIZE + 0x5000, 1, SIZE)

    lag = measure_lag("offsite", writing, newest, NOW)

    assert (lag.seconds, lag.behind_bytes) == (9.0, 0x5000)
    assert "lag 9 s" in lag.describe()
    assert measure_lag("empty", writing, None, NOW).seconds is None


def test_the_cheap_listing_starts_some_segments_before_the_current_one() -> None:
    assert listing_start(WalPosition(3 * SIZE, 1, SIZE)) is None
    assert listing_start(WalPosition((RECENT_SEGMENTS + 5) * SIZE + 1, 2, SIZE)) == Segment(2, 5).name(SIZE)


def test_a_wal_lag_beyond_the_rpo_opens_its_own_breach_naming_the_worst_destination() -> None:
    objectives = Objectives(rpo=timedelta(minutes=5), rto=timedelta(minutes=15), at_risk_fraction=0.8)
    facts = WatchFacts("billing", NOW, NOW - timedelta(days=1), None, wal_lags={"primary": 2.0, "offsite": 400.0})

    decision = judge_objectives(facts, objectives, NOW)

    assert [(o.objective, o.measured_seconds, o.objective_seconds) for o in decision.opened] == [(WAL_LAG, 400.0, 300)]
    assert "worst destination 'offsite'" in decision.opened[0].detail
    healthy = replace(facts, wal_lags={"primary": 2.0, "offsite": None}, open_objectives={WAL_LAG})
    assert [c.objective for c in judge_objectives(healthy, objectives, NOW).cleared] == [WAL_LAG]
