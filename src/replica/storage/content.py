"""Damage confirmed at rest: a restic repository names every file (but `config`) by the SHA-256 of its bytes, so
re-downloading a file and hashing it tells, without any key, whether the stored bytes are still what was written.

restic's `check` cannot tell a pack damaged at rest from one damaged on the way (a bit flipped in transit, a check
interrupted mid-read): both print "repository contains errors". This is the independent second opinion asked for
before a data-loss report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from replica.storage.s3 import S3Storage

# Where a restic repository keeps files named by their hash. When restic named no file, every one of them is
# re-read: expensive for a large repository (a full download), but this runs only after a check or restore failed,
# and the alternative is either a data-loss report nobody confirmed or silence about real damage. `config` is not
# named by its hash; `locks/` come and go and hold no data.
HASHED_FOLDERS = ("data/", "index/", "snapshots/", "keys/")
CONTENT_NAME = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DamagedObject:
    """An object whose bytes no longer hash to its name: what it should hash to, and what it hashed to (twice)."""

    key: str
    expected_sha256: str
    found_sha256: str


@dataclass(frozen=True)
class AtRest:
    """What re-reading the suspect objects found. Keys are full object keys in the bucket."""

    damaged: tuple[DamagedObject, ...] = ()
    missing: tuple[str, ...] = ()  # suspects named by restic that no object answers to
    intact: tuple[str, ...] = ()
    # Read twice with two different wrong hashes: the reads themselves are being damaged, nothing is proven.
    unsettled: tuple[str, ...] = ()
    swept: bool = field(default=False)  # True when every hashed file was read because restic named none

    @property
    def confirmed(self) -> bool:
        """Return True when data is damaged or gone at rest (a data-loss report is due)."""
        return bool(self.damaged or self.missing)

    def describe(self) -> str:
        """Return one line saying what was read and found, naming every damaged or missing object."""
        read = len(self.damaged) + len(self.intact) + len(self.unsettled)
        scope = f"all {read} files of the repository" if self.swept else f"{read + len(self.missing)} suspect file(s)"
        parts = [f"re-downloaded {scope} and compared each SHA-256 with its name"]
        if self.damaged:
            parts.append(f"{len(self.damaged)} damaged at rest: " + ", ".join(d.key for d in self.damaged))
        if self.missing:
            parts.append(f"{len(self.missing)} missing: " + ", ".join(self.missing))
        if self.unsettled:
            parts.append(f"{len(self.unsettled)} read differently twice: " + ", ".join(self.unsettled))
        if self.intact:
            parts.append(f"{len(self.intact)} intact: " + ", ".join(self.intact))
        return "; ".join(parts)


def confirm_at_rest(storage: S3Storage, bucket: str, prefix: str, suspects: Sequence[str]) -> AtRest:
    """Re-download the suspect files of the repository at `bucket`/`prefix` and hash each against its name.

    `suspects` are paths relative to the repository, or path prefixes for ids restic shortened (every file
    starting with one is read); a suspect no file answers to is missing. With no suspect, every file under
    HASHED_FOLDERS is read. Raises StorageError when the bucket cannot be listed or read (nothing is confirmed).
    """
    base = f"{prefix}/" if prefix else ""
    damaged: list[DamagedObject] = []
    missing: list[str] = []
    intact: list[str] = []
    unsettled: list[str] = []
    if suspects:
        groups = [(f"{base}{suspect}", list(storage.keys(bucket, f"{base}{suspect}"))) for suspect in suspects]
    else:
        groups = [(f"{base}{folder}", list(storage.keys(bucket, f"{base}{folder}"))) for folder in HASHED_FOLDERS]
    for name, listed in groups:
        # Only files named by a full SHA-256 can be judged (a folder marker or a stray object cannot).
        keys = [key for key in listed if CONTENT_NAME.fullmatch(key.rsplit("/", 1)[-1])]
        if not keys and suspects:
            missing.append(name)
        for key in keys:
            expected = key.rsplit("/", 1)[-1]
            first = storage.sha256(bucket, key)
            # Damage at rest hashes the same wrong way twice; a flip in transit does not: read a mismatch again.
            second = first if first in (None, expected) else storage.sha256(bucket, key)
            if first is None or second is None:
                missing.append(key)  # listed a moment ago, gone now
            elif second == expected:
                intact.append(key)
            elif second == first:
                damaged.append(DamagedObject(key, expected, first))
            else:
                unsettled.append(key)
    return AtRest(tuple(damaged), tuple(missing), tuple(intact), tuple(unsettled), swept=not suspects)
