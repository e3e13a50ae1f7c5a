"""restic's lock records and what restic says about them: the JSON of `restic cat lock`, the ids of `restic list
locks`, and the "repository is already locked" error of a command that ran into one."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from replica.restic.messages import UnexpectedOutput, parse_time

LOCK_ID = re.compile(r"^[0-9a-f]{64}$")
# restic's alreadyLockedError (internal/restic/lock.go): "repository is already locked [exclusively ]by PID 4242 on
# HOST by USER (UID 0, GID 0)\nlock was created at 2006-01-02 15:04:05 (35m12.5s ago)\nstorage ID 3ace8952".
_LOCKED = re.compile(
    r"repository is already locked (?P<exclusive>exclusively )?by PID (?P<pid>\d+) on (?P<host>\S*) by "
    r"(?P<user>.*?)(?: \(UID \d+, GID \d+\))?\s*$"
    r"(?:\s*lock was created at (?P<created>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \((?P<age>[^)]*) ago\)\s*$)?"
    r"(?:\s*storage ID (?P<id>[0-9a-f]+))?",
    re.MULTILINE,
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(h|ms|m|s|µs|us|ns)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class Lock:
    """One lock file of a repository: its id (full, or the 8-digit short id restic's messages print) and holder."""

    lock_id: str
    host: str
    pid: int
    user: str
    created_at: datetime
    exclusive: bool

    def age(self, now: datetime | None = None) -> timedelta:
        """Return how long ago the lock was written (never negative: clocks differ between hosts)."""
        return max((now or datetime.now(UTC)) - self.created_at, timedelta(0))

    def describe(self, now: datetime | None = None) -> str:
        """Return `[exclusively ]by pid 4242 on host db7 (user backup) since 2026-11-27T12:00:00Z (35 min ago)`."""
        how = "exclusively " if self.exclusive else ""
        since = self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{how}by pid {self.pid} on host {self.host or '?'} (user {self.user or '?'}) "
            f"since {since} ({format_age(self.age(now))} ago)"
        )

    def stale_here(self, host: str, is_alive: Callable[[int], bool]) -> bool:
        """Return True when the lock was written on `host` (this one) by a process that no longer exists."""
        return self.host == host and not is_alive(self.pid)

    def matches(self, lock_id: str) -> bool:
        """Return True when `lock_id` (full or short) names this lock."""
        return bool(lock_id) and (self.lock_id.startswith(lock_id) or lock_id.startswith(self.lock_id))


def format_age(age: timedelta) -> str:
    """Return an age as people read it: `12 s`, `35 min`, `3 h 5 min`, `4 days`."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds // 86400} days"


def parse_go_duration(text: str) -> timedelta | None:
    """Return the duration Go prints (`35m12.5s`, `1h0m0s`, `850ms`), or None when `text` is not one."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return timedelta(seconds=sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts))


def parse_locked_error(stderr: str, now: datetime | None = None) -> Lock | None:
    """Return the lock a failed restic command reported running into, or None when stderr names none.

    The creation time is taken from the age restic printed (the printed clock time is in the holder's time zone,
    which the message does not say); without an age, the clock time is read as UTC.
    """
    match = _LOCKED.search(stderr)
    if match is None:
        return None
    now = now or datetime.now(UTC)
    age = parse_go_duration(match["age"]) if match["age"] else None
    if age is not None:
        created_at = now - age
    elif match["created"]:
        created_at = datetime.strptime(match["created"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    else:
        created_at = now
    return Lock(
        lock_id=match["id"] or "",
        host=match["host"],
        pid=int(match["pid"]),
        user=match["user"].strip(),
        created_at=created_at,
        exclusive=bool(match["exclusive"]),
    )


def parse_lock(text: str, lock_id: str) -> Lock:
    """Return the lock `restic cat lock ID` printed (JSON). Raises UnexpectedOutput on anything else."""
    try:
        document = json.loads(text)
        return Lock(
            lock_id=lock_id,
            host=str(document.get("hostname", "")),
            pid=int(document["pid"]),
            user=str(document.get("username", "")),
            created_at=parse_time(str(document["time"])).astimezone(UTC),
            exclusive=bool(document.get("exclusive", False)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnexpectedOutput(f"restic cat lock printed no lock: {error}") from None


def parse_lock_ids(stdout: str) -> list[str]:
    """Return the lock ids `restic list locks` printed, one per line (other lines are skipped)."""
    return [line.strip() for line in stdout.splitlines() if LOCK_ID.match(line.strip())]
