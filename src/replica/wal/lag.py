"""Replication lag of a WAL archive ("RPO in seconds"). Pure.

Definition: a destination's lag is an upper bound, in seconds, on how much committed data a restore from that
destination would lose if the source were lost now. The source has written the log up to its insert LSN; the
destination durably holds every segment up to its newest archived one. When the source has written nothing past
the end of that segment, nothing is missing and the lag is 0. Otherwise the log past it was written after that
segment was stored (a segment is archived only once it is complete), so the data only the source has is at most
`now - stored time of the newest segment` old: that is the lag. A destination with no segment has no lag to
measure (None): everything written since the base backup is at risk, which the chain check reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from replica.wal.segments import SEGMENT_NAME, Segment, format_lsn, parse_segment_name, segment_of_lsn

# A segment begins with a long page header (XLogLongPageHeaderData, MAXALIGNed): right after a segment switch the
# insert position points past it although no record was written into the new segment yet.
LONG_PAGE_HEADER_BYTES = 40
# How many segments before the current one the cheap listing starts after: the newest archived segment of a
# healthy archive is within a few of the current one; a listing that finds none there falls back to a full one.
RECENT_SEGMENTS = 64


@dataclass(frozen=True)
class WalPosition:
    """Where the source's log is: its insert LSN, timeline and segment size."""

    insert_lsn: int
    timeline: int
    segment_bytes: int

    @property
    def segment(self) -> Segment:
        """Return the segment being written."""
        return segment_of_lsn(self.insert_lsn, self.timeline, self.segment_bytes)


@dataclass(frozen=True)
class NewestSegment:
    """The newest segment archived in a destination and when it was stored."""

    name: str
    segment: Segment
    stored_at: datetime


@dataclass(frozen=True)
class Lag:
    """A destination's lag at `measured_at`: seconds (None: nothing archived) and the bytes written past it."""

    destination: str
    measured_at: datetime
    seconds: float | None
    behind_bytes: int | None
    insert_lsn: int
    newest: NewestSegment | None

    def describe(self) -> str:
        """Return one line: `'primary': lag 0 s (newest segment ..., source at 0/3000028)`."""
        where = f"source at {format_lsn(self.insert_lsn)}"
        if self.newest is None or self.seconds is None:
            return f"'{self.destination}': no WAL segment archived ({where})"
        return (
            f"'{self.destination}': lag {self.seconds:.0f} s (newest segment {self.newest.name} stored "
            f"{self.newest.stored_at.isoformat(timespec='seconds')}, {self.behind_bytes} bytes behind, {where})"
        )


def listing_start(position: WalPosition) -> str | None:
    """Return the name a cheap listing starts after: a segment RECENT_SEGMENTS before the current one (None when
    the log is younger than that: list everything)."""
    number = position.segment.number - RECENT_SEGMENTS
    if number < 0:
        return None
    return Segment(position.timeline, number).name(position.segment_bytes)


def newest_segment(stored: Iterable[tuple[str, datetime]], segment_bytes: int) -> NewestSegment | None:
    """Return the segment with the highest number among archived (name, stored at) pairs; None when there is none.
    Of two timelines' copies of one number, the later timeline's (the one a restore follows)."""
    newest: NewestSegment | None = None
    for name, stored_at in stored:
        if not SEGMENT_NAME.fullmatch(name):
            continue
        try:
            segment = parse_segment_name(name, segment_bytes)
        except ValueError:
            continue
        if newest is None or (segment.number, segment.timeline) > (newest.segment.number, newest.segment.timeline):
            newest = NewestSegment(name, segment, stored_at)
    return newest


def measure_lag(destination: str, position: WalPosition, newest: NewestSegment | None, now: datetime) -> Lag:
    """Return the lag of a destination whose newest archived segment is `newest` (see the module's definition)."""
    if newest is None:
        return Lag(destination, now, None, None, position.insert_lsn, None)
    durable_end = newest.segment.end_lsn(position.segment_bytes)
    behind = max(position.insert_lsn - durable_end, 0)
    if behind <= LONG_PAGE_HEADER_BYTES:
        return Lag(destination, now, 0.0, behind, position.insert_lsn, newest)
    seconds = max((now - newest.stored_at).total_seconds(), 0.0)
    return Lag(destination, now, seconds, behind, position.insert_lsn, newest)
