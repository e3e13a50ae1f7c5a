"""The WAL chain of each destination, where its gaps still are, what retention deletes, how the lag is defined and
how the watchdog judges it (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from replica.actions.wal_chain import on_path
from replica.actions.wal_lag import newest_archived
from replica.catalog.wal_lags import LagRecord
from replica.policy.objectives import Objectives
from replica.policy.watchdog import WAL_LAG, WatchFacts, judge_objectives
from replica.wal.archive import StoredWal, WalArchive
from replica.wal.chain import (
    EMPTY,
    GAPS,
    NO_BASE_BACKUP,
    OK,
    BaseBackupStart,
    TimelineHistory,
    base_backup_start,
    expired_names,
    judge_chain,
    newest_history_name,
    oldest_start,
    parse_timeline_history,
)
from replica.wal.lag import (
    LONG_PAGE_HEADER_BYTES,
    RECENT_SEGMENTS,
    PositionSample,
    WalPosition,
    listing_start,
    measure_lag,
)
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


# Timeline 2 branched from timeline 1 inside segment 0x12 (as `00000002.history` says).
HISTORY_2 = parse_timeline_history("00000002.history", "1\t0/12000100\tno recovery target specified\n")


def test_a_new_timelines_segments_carry_the_chain_across_a_promotion() -> None:
    # The segment holding the switch point exists on both timelines: the new timeline's copy carries on.
    archived = {"primary": [*names(0x10, 0x11, 0x12), *names(0x12, 0x13, timeline=2), "00000002.history"]}

    assert judge_chain("primary", START, archived, history=HISTORY_2).state == OK
    assert [HISTORY_2.timeline_of(number, SIZE) for number in (0x11, 0x12, 0x13)] == [1, 2, 2]


def test_an_old_timelines_segment_after_the_switch_fills_no_hole() -> None:
    # GIVEN the old primary still archiving on timeline 1 after the promotion: its 0x13 is not what recovery on
    # timeline 2 reads, nor is timeline 1's copy of the switch segment 0x12
    archived = {
        "primary": [*names(0x10, 0x11, 0x12, 0x13), *names(0x14, timeline=2)],
        "offsite": [*names(0x10, 0x11), *names(0x12, 0x13, 0x14, timeline=2)],
    }

    verdict = judge_chain("primary", START, archived, history=HISTORY_2)

    assert verdict.state == GAPS
    (gap,) = verdict.gaps
    assert (gap.gap.first, gap.gap.last) == (0x12, 0x13)
    assert gap.describe().endswith("'offsite' has all of it")
    # AND the copy holding timeline 2's segments is complete; with no history (never promoted) timeline 1 counts
    assert judge_chain("offsite", START, archived, history=HISTORY_2).state == OK
    assert judge_chain("primary", START, archived, history=TimelineHistory(1)).state == OK


def test_a_timeline_history_file_reads_as_its_switch_points() -> None:
    text = "1\t0/12000100\tno recovery target specified\n\n2\t1/4000000\tbefore 2026-11-27 03:00:00+00\n"

    history = parse_timeline_history("00000003.history", text)

    assert history == TimelineHistory(3, ((1, 0x12000100), (2, 0x1_0400_0000)))
    assert [history.timeline_of(n, SIZE) for n in (0x11, 0x12, 0x103, 0x104)] == [1, 2, 2, 3]
    assert newest_history_name(["00000002.history", "00000003.history", *names(0x20, timeline=4)]) == (
        "00000003.history"
    )
    with pytest.raises(ValueError, match=r"00000002\.history, line 1: not 'parentTLI switchpoint reason'"):
        parse_timeline_history("00000002.history", "one 0/1 x\n")


def test_a_chain_ending_before_the_newest_base_backups_end_is_no_gap() -> None:
    # The backup's tar holds the WAL of its own duration; segments not archived yet are lag, not loss.
    ended = replace(START, end_lsn=0x12 * SIZE + 0x100)
    verdict = judge_chain("primary", ended, {"primary": names(0x0F, 0x10)})
    assert verdict.state == OK and verdict.gaps == []


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


def test_a_partial_segment_is_no_part_of_the_chain_nor_of_the_lag() -> None:
    archived = {"primary": [*names(0x10), names(0x11)[0] + ".partial"]}

    verdict = judge_chain("primary", START, archived)

    assert (verdict.state, verdict.last, verdict.segments) == (OK, 0x10, 1)
    newest = find_newest([(names(0x10)[0], NOW), (names(0x11)[0] + ".partial", NOW)], SIZE)
    assert newest is not None and newest.segment == Segment(1, 0x10)


def test_retention_deletes_older_segments_partial_segments_and_backup_history_files_only() -> None:
    archived = [
        *names(0x0D, 0x0E, 0x0F, 0x10, 0x11),
        names(0x0E)[0] + ".00000028.backup",
        names(0x10)[0] + ".00000028.backup",
        names(0x0F)[0] + ".partial",
        names(0x10)[0] + ".partial",
        "00000002.history",
        "not-a-wal-file",
    ]

    expired = expired_names(archived, START.segment, SIZE)

    assert expired == sorted(
        [*names(0x0D, 0x0E, 0x0F), names(0x0E)[0] + ".00000028.backup", names(0x0F)[0] + ".partial"]
    )


def sample(seconds_ago: float, lsn: int) -> PositionSample:
    return PositionSample(NOW - timedelta(seconds=seconds_ago), lsn)


def test_lag_is_zero_while_the_source_has_written_nothing_past_the_newest_segment() -> None:
    newest = find_newest(
        [(names(0x10)[0], NOW - timedelta(minutes=5)), (names(0x11)[0], NOW - timedelta(seconds=9))], SIZE
    )
    assert newest is not None and newest.segment == Segment(1, 0x11)
    # Right after a segment switch the insert position is past the next segment's long page header.
    switched = WalPosition(0x12 * SIZE + LONG_PAGE_HEADER_BYTES, 1, SIZE)

    lag = measure_lag("primary", switched, newest, [sample(0, switched.insert_lsn)], NOW)

    assert (lag.seconds, lag.lower_bound) == (0.0, False)


def test_lag_is_the_time_since_the_source_had_written_no_more_than_the_destination_holds() -> None:
    # The archiver is 200 segments behind: it stored segment 0x11 a second ago, but the source was already past
    # its end 10 minutes ago; the last position at or before its end was read 11 minutes ago.
    newest = find_newest([(names(0x11)[0], NOW - timedelta(seconds=1)), ("00000001.history", NOW)], SIZE)
    writing = WalPosition((0x12 + 200) * SIZE + 0x5000, 1, SIZE)
    samples = [
        sample(720, 0x10 * SIZE),
        sample(660, 0x12 * SIZE + LONG_PAGE_HEADER_BYTES),  # page header aside: nothing past 0x11 written yet
        sample(600, 0x12 * SIZE + 0x100),
        sample(0, writing.insert_lsn),
    ]

    lag = measure_lag("offsite", writing, newest, samples, NOW)

    assert (lag.seconds, lag.behind_bytes, lag.lower_bound) == (660.0, 200 * SIZE + 0x5000, False)
    assert "lag 660 s" in lag.describe()


def test_with_no_position_old_enough_the_lag_is_at_least_the_oldest_positions_age() -> None:
    newest = find_newest([(names(0x11)[0], NOW - timedelta(seconds=1))], SIZE)
    writing = WalPosition(0x40 * SIZE, 1, SIZE)
    samples = [sample(300, 0x30 * SIZE), sample(0, writing.insert_lsn)]

    lag = measure_lag("offsite", writing, newest, samples, NOW)

    assert (lag.seconds, lag.lower_bound) == (300.0, True)
    assert "lag at least 300 s" in lag.describe()


def test_an_empty_archive_has_a_lag_once_a_base_backup_needs_its_log() -> None:
    writing = WalPosition(0x40 * SIZE, 1, SIZE)
    samples = [sample(900, 0x20 * SIZE), sample(0, writing.insert_lsn)]

    lag = measure_lag("empty", writing, None, samples, NOW)

    assert (lag.seconds, lag.lower_bound, lag.behind_bytes) == (900.0, True, None)
    assert "lag at least 900 s: no WAL segment archived" in lag.describe()
    assert measure_lag("empty", writing, None, samples, NOW, needed=False).seconds is None


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
    # A lower bound (nothing archived, or no position old enough) opens it too, saying "at least".
    empty = replace(facts, wal_lags={"primary": 2.0, "offsite": 900.0}, wal_lag_lower_bounds={"offsite"})
    (opened,) = judge_objectives(empty, objectives, NOW).opened
    assert "WAL lag at least 15m" in opened.detail


class ListedArchive:
    """An archive's listing, recording where each listing started."""

    def __init__(self, stored: list[str]) -> None:
        self.stored_names = stored
        self.listed_after: list[str | None] = []

    def stored(self, start_after: str | None = None) -> Iterator[StoredWal]:
        self.listed_after.append(start_after)
        for name in sorted(self.stored_names):
            if start_after is None or name > start_after:
                yield StoredWal(name, f"wal/{name}", 1, NOW - timedelta(minutes=30))


def test_an_archive_far_behind_is_listed_after_the_newest_segment_found_before_not_whole() -> None:
    # GIVEN a destination whose newest segment is far more than RECENT_SEGMENTS behind the source
    archive = ListedArchive(names(0x10, 0x11))
    position = WalPosition((0x11 + RECENT_SEGMENTS + 10) * SIZE, 1, SIZE)
    first = newest_archived(cast(WalArchive, archive), position)
    assert first is not None and first.segment == Segment(1, 0x11)
    assert archive.listed_after == [listing_start(position), None]  # nothing recorded yet: the whole archive once
    previous = LagRecord("billing", "offsite", NOW, 60.0, first.name, first.stored_at, "0/0")
    archive.listed_after.clear()

    # WHEN the next tick measures again, with one more segment archived
    archive.stored_names.append(names(0x12)[0])
    second = newest_archived(cast(WalArchive, archive), position, previous)

    # THEN it lists only after the segment found before, and finds the new one; with nothing new, keeps the old
    assert archive.listed_after == [listing_start(position), first.name]
    assert second is not None and second.segment == Segment(1, 0x12)
    unchanged = newest_archived(cast(WalArchive, ListedArchive(names(0x10, 0x11))), position, previous)
    assert unchanged == first


def test_an_abandoned_timelines_newer_segments_are_not_the_newest_on_the_sources_path() -> None:
    # GIVEN a standby promoted to timeline 2 in segment 0x12 while the old primary archived timeline 1 up to 0x1E
    old_primary = [(name, NOW) for name in names(*range(0x10, 0x1F))]
    path = on_path(HISTORY_2, SIZE)
    # WHEN nothing of timeline 2 is archived yet, THEN the newest segment on its path is the last before the switch
    newest = find_newest(old_primary, SIZE, path)
    assert newest is not None and newest.segment == Segment(1, 0x11)
    # AND once timeline 2 archives, its own segments are the newest, the old primary's 0x1E never
    newest = find_newest([*old_primary, *((name, NOW) for name in names(0x12, 0x13, timeline=2))], SIZE, path)
    assert newest is not None and newest.segment == Segment(2, 0x13)
    # AND without the path (the old rule) the abandoned 0x1E would pass for archived progress
    unfiltered = find_newest(old_primary, SIZE)
    assert unfiltered is not None and unfiltered.segment == Segment(1, 0x1E)
