"""Whether a destination's WAL archive carries the log from a base backup to its newest segment, which other
destination holds what it lacks, and which archived files retention may delete. Pure: names in, verdicts out.

A chain starts at the segment holding the start LSN of the oldest retained base backup (restoring that backup
replays the log from there) and ends at the newest segment archived in that destination. Each segment number must
be there on the timeline a restore follows at that LSN: the newest timeline history file of the archive
(`TimelineHistory`) says which (a segment of an old primary still archiving on timeline 1 after the switch to
timeline 2 fills no hole). Timeline history files, backup history files and partial segments are never part of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from replica.wal.segments import (
    BACKUP_HISTORY_NAME,
    HISTORY_NAME,
    PARTIAL_NAME,
    SEGMENT_NAME,
    Gap,
    Segment,
    find_gaps,
    parse_lsn,
    parse_segment_name,
    segment_of_lsn,
)

OK, GAPS, NO_BASE_BACKUP, EMPTY = "ok", "gaps", "no base backup", "empty"


@dataclass(frozen=True)
class BaseBackupStart:
    """Where the log a base backup needs begins (and ends: it is consistent only once replayed to its end LSN):
    the snapshot, its start LSN, timeline, segment size and end LSN (None when not recorded)."""

    snapshot_id: str
    start_lsn: int
    timeline: int
    segment_bytes: int
    end_lsn: int | None = None

    @property
    def segment(self) -> Segment:
        """Return the segment holding the start LSN: the first one a restore of this backup fetches."""
        return segment_of_lsn(self.start_lsn, self.timeline, self.segment_bytes)


def base_backup_start(snapshot_id: str, fingerprint: Mapping[str, object]) -> BaseBackupStart | None:
    """Return where a physical base backup's log begins, from its fingerprint (`start_lsn`, `timeline`,
    `wal_segment_size`); None when the fingerprint is not one of a base backup (a logical dump of the job).

    Raises ValueError naming the snapshot when it has a start LSN that cannot be read: guessing would let
    retention delete WAL that backup needs."""
    start, timeline, segment_bytes = (fingerprint.get(key) for key in ("start_lsn", "timeline", "wal_segment_size"))
    if start is None:
        return None
    if not isinstance(start, str) or not isinstance(timeline, int) or not isinstance(segment_bytes, int):
        raise ValueError(f"snapshot {snapshot_id}: fingerprint has start_lsn but no valid timeline or wal_segment_size")
    end = fingerprint.get("end_lsn")
    try:
        end_lsn = parse_lsn(end) if isinstance(end, str) else None
        return BaseBackupStart(snapshot_id, parse_lsn(start), timeline, segment_bytes, end_lsn)
    except ValueError as error:
        raise ValueError(f"snapshot {snapshot_id}: fingerprint's start or end LSN: {error}") from None


def oldest_start(starts: Iterable[BaseBackupStart]) -> BaseBackupStart | None:
    """Return the base backup whose log begins first (None for none): the one that needs the most WAL."""
    return min(starts, key=lambda start: start.start_lsn, default=None)


@dataclass(frozen=True)
class TimelineHistory:
    """The timelines a restore follows to `timeline`: each earlier one with the LSN where it was switched from
    (PostgreSQL's `TLI.history`: one line `parentTLI switchpoint reason` per ancestor, oldest first)."""

    timeline: int
    switches: tuple[tuple[int, int], ...] = ()  # (parent timeline, switch point LSN), oldest first

    def timeline_of(self, number: int, segment_bytes: int) -> int:
        """Return the timeline whose copy of segment `number` a restore reads: the one current at the segment's
        last byte (the segment holding a switch point exists on both; the new timeline's copy carries on)."""
        last_byte = (number + 1) * segment_bytes - 1
        for parent, switch_lsn in self.switches:
            if last_byte < switch_lsn:
                return parent
        return self.timeline


def parse_timeline_history(name: str, text: str) -> TimelineHistory:
    """Return the history in a timeline history file `NNNNNNNN.history`. Raises ValueError naming the file when a
    line is not `parentTLI switchpoint reason`."""
    if not HISTORY_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a timeline history file name")
    switches = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split(None, 2)
        if not fields or fields[0].startswith("#"):
            continue
        try:
            switches.append((int(fields[0]), parse_lsn(fields[1])))
        except (ValueError, IndexError):
            raise ValueError(f"{name}, line {number}: not 'parentTLI switchpoint reason': {line.strip()!r}") from None
    return TimelineHistory(int(name[:8], 16), tuple(switches))


def newest_history_name(names: Iterable[str]) -> str | None:
    """Return the timeline history file of the highest timeline among archived names (None: none archived)."""
    return max((name for name in names if HISTORY_NAME.fullmatch(name)), default=None)


def segment_numbers(names: Iterable[str], segment_bytes: int, history: TimelineHistory | None = None) -> set[int]:
    """Return the numbers of the segments among archived file names (history files and other names skipped), of
    only those on the timeline `history` says a restore reads them from (any timeline when None)."""
    numbers = set()
    for name in names:
        if SEGMENT_NAME.fullmatch(name):
            try:
                segment = parse_segment_name(name, segment_bytes)
            except ValueError:  # a name that cannot be a segment of this size is no part of the chain
                continue
            if history is None or segment.timeline == history.timeline_of(segment.number, segment_bytes):
                numbers.add(segment.number)
    return numbers


@dataclass(frozen=True)
class GapCopy:
    """Another destination holding part or all of a gap: the runs of segments it has."""

    destination: str
    held: list[Gap]  # runs of segment numbers (Gap's fields) present in that destination
    whole: bool

    def describe(self) -> str:
        """Return `'copy' has all of it` or `'copy' has LSN ...`."""
        if self.whole:
            return f"'{self.destination}' has all of it"
        return f"'{self.destination}' has " + ", ".join(run.describe() for run in self.held)


@dataclass(frozen=True)
class ChainGap:
    """Segments missing from one destination's chain and the other destinations that still have them."""

    gap: Gap
    copies: list[GapCopy] = field(default_factory=list)

    @property
    def recoverable(self) -> bool:
        """Return True when every missing segment is held by at least one other destination."""
        held: set[int] = set()
        for copy in self.copies:
            for run in copy.held:
                held.update(range(run.first, run.last + 1))
        return held >= set(range(self.gap.first, self.gap.last + 1))

    def describe(self) -> str:
        """Return the gap, and where its segments still are: `LSN ... (2 segments) missing; 'copy' has all of it`."""
        where = "; ".join(copy.describe() for copy in self.copies) or "no other destination has any of it"
        return f"{self.gap.describe()} missing; {where}"


@dataclass(frozen=True)
class ChainVerdict:
    """The WAL chain of one destination: its state (ok, gaps, no base backup, empty), bounds and gaps."""

    destination: str
    state: str
    base_backup: BaseBackupStart | None
    first: int | None  # segment numbers of the chain's two ends
    last: int | None
    segments: int  # segments archived within the chain
    gaps: list[ChainGap] = field(default_factory=list)

    def describe(self) -> str:
        """Return one line on the chain."""
        if self.state == NO_BASE_BACKUP:
            return f"'{self.destination}': no retained base backup, no chain to check"
        if self.state == EMPTY or self.base_backup is None or self.first is None or self.last is None:
            return f"'{self.destination}': no WAL segment archived at or after the base backup's start"
        size = self.base_backup.segment_bytes
        span = f"{Segment(0, self.first).name(size)[8:]}..{Segment(0, self.last).name(size)[8:]}"
        if not self.gaps:
            return f"'{self.destination}': complete from base backup {self.base_backup.snapshot_id} ({span})"
        gaps = " | ".join(gap.describe() for gap in self.gaps)
        return f"'{self.destination}': {len(self.gaps)} gap(s) in {span}: {gaps}"


def judge_chain(
    destination: str,
    start: BaseBackupStart | None,
    archived: Mapping[str, Iterable[str]],
    history: TimelineHistory | None = None,
) -> ChainVerdict:
    """Return the chain of `destination` from the base backup `start` to its newest archived segment.

    A chain that ends before the newest base backup's stop LSN is no gap: a base backup holds the WAL of its own
    duration (`pg_basebackup -X fetch`), and segments not archived yet are the lag's business, not lost.

    `archived` holds the archived file names of every destination of the job (this one included): each gap names
    the other destinations that still hold its segments, whole or in part. `history` is the destination's newest
    timeline history: only a segment on the timeline it says counts (None: any timeline's copy of a number).
    """
    if start is None:
        return ChainVerdict(destination, NO_BASE_BACKUP, None, None, None, 0)
    size = start.segment_bytes
    numbers = {name: segment_numbers(names, size, history) for name, names in archived.items()}
    own = numbers.get(destination, set())
    first = start.segment.number
    last = max(own, default=None)
    if last is None or last < first:
        return ChainVerdict(destination, EMPTY, start, first, None, 0)
    present = [Segment(0, number) for number in own]
    gaps = []
    for gap in find_gaps(present, first, last, size):
        copies = []
        for other, held in sorted(numbers.items()):
            if other == destination:
                continue
            runs = held_runs(held, gap.first, gap.last, size)
            if runs:
                copies.append(GapCopy(other, runs, sum(r.last - r.first + 1 for r in runs) == gap.last - gap.first + 1))
        gaps.append(ChainGap(gap, copies))
    within = sum(1 for number in own if first <= number <= last)
    return ChainVerdict(destination, GAPS if gaps else OK, start, first, last, within, gaps)


def held_runs(held: set[int], first: int, last: int, segment_bytes: int) -> list[Gap]:
    """Return the runs of segment numbers in `first`..`last` that `held` has (the complement of its gaps there)."""
    missing = find_gaps([Segment(0, number) for number in held], first, last, segment_bytes)
    runs, number = [], first
    for gap in [*missing, Gap(last + 1, last + 1, 0, 0)]:
        if gap.first > number:
            runs.append(Gap(number, gap.first - 1, number * segment_bytes, gap.first * segment_bytes))
        number = gap.last + 1
    return runs


def expired_names(names: Iterable[str], keep_from: Segment, segment_bytes: int) -> list[str]:
    """Return the archived segments, partial segments and backup history files older than `keep_from` (the start
    segment of the oldest retained base backup), in name order: what retention may delete.

    Timeline history files are always kept (a restore reads them to follow a timeline switch, and they are tiny);
    so is any name replica cannot place, and everything from `keep_from` on.
    """
    expired = []
    for name in names:
        if any(pattern.fullmatch(name) for pattern in (SEGMENT_NAME, PARTIAL_NAME, BACKUP_HISTORY_NAME)):
            segment_name = name[:24]  # backup history and partial files are named after their segment
        else:
            continue
        try:
            number = parse_segment_name(segment_name, segment_bytes).number
        except ValueError:
            continue
        if number < keep_from.number:
            expired.append(name)
    return sorted(expired)
