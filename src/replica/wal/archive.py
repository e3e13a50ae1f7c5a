"""The WAL archive of one job at one destination: sealed objects under `<prefix>/replica/wal/NAME`.

INTERFACE FIRST (groundwork): the implementation lands in the next commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from replica.config.models import DestinationConfig
from replica.storage.s3 import S3Storage

WAL_FOLDER = "replica/wal/"


def wal_prefix(destination: DestinationConfig) -> str:
    """Return the key prefix of a destination's WAL archive (ends with `/`)."""
    return f"{destination.prefix}/{WAL_FOLDER}" if destination.prefix else WAL_FOLDER


@dataclass(frozen=True)
class StoredWal:
    """One archived file as listed: its WAL file name, object key, stored size and when it was stored."""

    name: str
    key: str
    stored_bytes: int
    stored_at: datetime


class WalArchive:
    """The WAL objects of one job at one destination, sealed with a key derived from the destination's password."""

    def __init__(self, storage: S3Storage, destination: DestinationConfig, key: bytes) -> None:
        self.storage = storage
        self.destination = destination
        self.key = key

    def push(self, name: str, data: bytes) -> Literal["stored", "present"]:
        """Store one WAL file; return "stored", or "present" when an object of that name already holds the same
        content. Raises WalConflict when it holds other content, StorageError when it cannot be stored."""
        raise NotImplementedError

    def fetch(self, name: str) -> bytes | None:
        """Return a WAL file's content, or None when this destination has none of that name. Raises WalDamaged when
        the stored object fails its digest or authentication, StorageError when it cannot be read."""
        raise NotImplementedError

    def stored(self, start_after: str | None = None) -> Iterator[StoredWal]:
        """Yield every archived file in name order (only those named after `start_after` when given). Raises
        StorageError."""
        raise NotImplementedError

    def delete(self, names: Iterable[str]) -> None:
        """Delete archived files by name (retention). Raises StorageError."""
        raise NotImplementedError
