"""Replication lag of a WAL archive ("RPO in seconds"). Pure.

Definition: a destination's lag is an upper bound, in seconds, on how much committed data a restore from that
destination would lose if the source were lost now. The destination durably holds the log up to the end of its
newest archived segment (its "durable end"). When the source's insert LSN is within that (the next segment's page
header aside), nothing is missing and the lag is 0. Otherwise the data at risk is the log past the durable end, and
it was written after the last moment the source's insert LSN was still at or before the durable end: the lag is
the time since the newest recorded source position (`PositionSample`, one per measurement) that was. The stored
time of the newest segment says nothing here: an archiver 200 segments behind stores segment N now, while N+1..N+200
were written long before.

When no recorded position is that old (the positions kept do not reach back far enough, or the destination holds
nothing at all), the lag is at least the age of the oldest recorded position: reported so, and marked as a lower
bound (`Lag.lower_bound`). With nothing archived and no base backup to need it, there is no lag (None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
class PositionSample:
    """The source's insert LSN as read at `measured_at` (one per measurement, the recent ones kept)."""

    measured_at: datetime
    insert_lsn: int


@dataclass(frozen=True)
class Lag:
    """A destination's lag at `measured_at`: seconds (None: nothing archived, nothing needed), whether it is only a
    lower bound, and the bytes written past what the destination holds (None: nothing archived)."""

    destination: str
    measured_at: datetime
    seconds: float | None
    behind_bytes: int | None
    insert_lsn: int
    newest: NewestSegment | None
    lower_bound: bool = False

    def describe(self) -> str:
        """Return one line: `'primary': lag 0 s (newest segment ..., source at 0/3000028)`."""
        where = f"source at {format_lsn(self.insert_lsn)}"
        amount = f"at least {self.seconds:.0f} s" if self.lower_bound else f"{self.seconds:.0f} s"
        if self.newest is None:
            if self.seconds is None:
                return f"'{self.destination}': no WAL segment archived ({where})"
            return f"'{self.destination}': lag {amount}: no WAL segment archived ({where})"
        return (
            f"'{self.destination}': lag {amount} (newest segment {self.newest.name} stored "
            f"{self.newest.stored_at.isoformat(timespec='seconds')}, {self.behind_bytes} bytes behind, {where})"
        )


def listing_start(position: WalPosition) -> str | None:
    """Return the name a cheap listing starts after: a segment RECENT_SEGMENTS before the current one (None when
    the log is younger than that: list everything)."""
    number = position.segment.number - RECENT_SEGMENTS
    if number < 0:
        return None
    return Segment(position.timeline, number).name(position.segment_bytes)


def newest_segment(
    stored: Iterable[tuple[str, datetime]], segment_bytes: int, on_path: Callable[[Segment], bool] | None = None
) -> NewestSegment | None:
    """Return the segment with the highest number among archived (name, stored at) pairs; None when there is none.
    Of two timelines' copies of one number, the later timeline's (the one a restore follows). With `on_path`, only
    the segments it accepts count: those of the timelines a restore follows, not an abandoned timeline's (an old
    primary that archived on after its standby was promoted)."""
    newest: NewestSegment | None = None
    for name, stored_at in stored:
        if not SEGMENT_NAME.fullmatch(name):
            continue
        try:
            segment = parse_segment_name(name, segment_bytes)
        except ValueError:
            continue
        if on_path is not None and not on_path(segment):
            continue
        if newest is None or (segment.number, segment.timeline) > (newest.segment.number, newest.segment.timeline):
            newest = NewestSegment(name, segment, stored_at)
    return newest


def measure_lag(
    destination: str,
    position: WalPosition,
    newest: NewestSegment | None,
    samples: Sequence[PositionSample],
    now: datetime,
    *,
    needed: bool = True,
) -> Lag:
    """Return the lag of a destination whose newest archived segment is `newest`, from the recorded source
    positions `samples` (this measurement's among them; see the module's definition). `needed`: whether anything
    needs the log yet (a base backup exists); a destination with nothing archived and nothing needed has no lag."""
    if newest is None:
        if not needed:
            return Lag(destination, now, None, None, position.insert_lsn, None)
        durable_end = None
        behind = None
    else:
        durable_end = newest.segment.end_lsn(position.segment_bytes)
        behind = max(position.insert_lsn - durable_end, 0)
        if behind <= LONG_PAGE_HEADER_BYTES:
            return Lag(destination, now, 0.0, behind, position.insert_lsn, newest)
    held = [
        s.measured_at
        for s in samples
        if durable_end is not None and s.insert_lsn <= durable_end + LONG_PAGE_HEADER_BYTES
    ]
    if held:
        return Lag(destination, now, _age(max(held), now), behind, position.insert_lsn, newest)
    oldest = min((s.measured_at for s in samples), default=now)
    return Lag(destination, now, _age(oldest, now), behind, position.insert_lsn, newest, lower_bound=True)


def _age(moment: datetime, now: datetime) -> float:
    return max((now - moment).total_seconds(), 0.0)
