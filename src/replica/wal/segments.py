"""PostgreSQL's write-ahead log by name: segment file names, log sequence numbers (LSNs) and gaps. Pure.

A segment file is named `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number split into a "log" part and a
"segment" part, both in hex. How many segments make one log depends on the cluster's segment size (16 MiB unless
`initdb --wal-segsize` chose another), so every conversion takes it. Beside segments the archive holds timeline
history files (`00000002.history`), backup history files (`...000028.backup`) and partial segments
(`...0005.partial`): a promoted standby archives the last, incomplete segment of its old timeline under that name
(the new timeline's copy of that segment number is the one recovery follows; the partial one only helps by hand).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")
HISTORY_NAME = re.compile(r"[0-9A-F]{8}\.history")
BACKUP_HISTORY_NAME = re.compile(r"[0-9A-F]{24}\.[0-9A-F]{8}\.backup")
PARTIAL_NAME = re.compile(r"[0-9A-F]{24}\.partial")
LSN_TEXT = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
LOG_ID_BYTES = 0x1_0000_0000


def is_archivable_name(name: str) -> bool:
    """Return True for the file names PostgreSQL archives: segments, partial segments, timeline and backup history
    files."""
    patterns = (SEGMENT_NAME, PARTIAL_NAME, HISTORY_NAME, BACKUP_HISTORY_NAME)
    return any(pattern.fullmatch(name) for pattern in patterns)


def parse_lsn(text: str) -> int:
    """Return the LSN `X/Y` (as PostgreSQL prints it) as an integer. Raises ValueError for other text."""
    match = LSN_TEXT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a log sequence number (X/Y in hex)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    """Return an integer LSN as PostgreSQL prints it (`0/2000028`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFF_FFFF:X}"


def _segments_per_log(segment_bytes: int) -> int:
    if segment_bytes <= 0 or segment_bytes & (segment_bytes - 1) or segment_bytes > 1024 * 1024 * 1024:
        raise ValueError(f"WAL segment size {segment_bytes} is not a power of two up to 1 GiB")
    return LOG_ID_BYTES // segment_bytes


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: its timeline and its number (LSN of its first byte // segment size)."""

    timeline: int
    number: int

    def name(self, segment_bytes: int) -> str:
        """Return the segment's file name."""
        per_log = _segments_per_log(segment_bytes)
        return f"{self.timeline:08X}{self.number // per_log:08X}{self.number % per_log:08X}"

    def start_lsn(self, segment_bytes: int) -> int:
        """Return the LSN of the segment's first byte."""
        return self.number * segment_bytes

    def end_lsn(self, segment_bytes: int) -> int:
        """Return the LSN just past the segment's last byte."""
        return (self.number + 1) * segment_bytes


def parse_segment_name(name: str, segment_bytes: int) -> Segment:
    """Return the segment a file name stands for. Raises ValueError when it is no segment name or does not fit
    the segment size (a "segment" part beyond what one log holds)."""
    if not SEGMENT_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a WAL segment name")
    per_log = _segments_per_log(segment_bytes)
    timeline, log, part = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    if part >= per_log:
        raise ValueError(f"'{name}' cannot be a segment of {segment_bytes} bytes")
    return Segment(timeline, log * per_log + part)


def segment_of_lsn(lsn: int, timeline: int, segment_bytes: int) -> Segment:
    """Return the segment holding the byte at `lsn` on `timeline`."""
    _segments_per_log(segment_bytes)
    return Segment(timeline, lsn // segment_bytes)


@dataclass(frozen=True)
class Gap:
    """Segment numbers `first`..`last` (inclusive) that no timeline has, and the LSN range they held."""

    first: int
    last: int
    start_lsn: int
    end_lsn: int

    def describe(self) -> str:
        """Return the gap as text: `LSN 0/3000000-0/5000000 (2 segments)`."""
        count = self.last - self.first + 1
        return f"LSN {format_lsn(self.start_lsn)}-{format_lsn(self.end_lsn)} ({count} segment{'s' * (count != 1)})"


def find_gaps(present: Iterable[Segment], first: int, last: int, segment_bytes: int) -> list[Gap]:
    """Return the runs of segment numbers in `first`..`last` that no present segment has, whatever its timeline:
    the caller passes only the segments on the timeline a restore reads (see `chain.TimelineHistory`)."""
    numbers = {segment.number for segment in present}
    gaps: list[Gap] = []
    number = first
    while number <= last:
        if number in numbers:
            number += 1
            continue
        start = number
        while number <= last and number not in numbers:
            number += 1
        gaps.append(Gap(start, number - 1, start * segment_bytes, number * segment_bytes))
    return gaps
