"""The WAL archive of one job at one destination: sealed objects under `<prefix>/replica/wal/NAME`.

Each object carries, as metadata, what a check needs without the key (see `sealing`): `sha256` of the stored bytes,
and `content-tag`, the keyed tag of the content that makes a repeated push recognisable. `content-bytes` is the
WAL file's own size (a segment's is the cluster's segment size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from replica.config.models import DestinationConfig
from replica.errors import WalConflict, WalDamaged
from replica.storage.s3 import S3Storage
from replica.wal.sealing import SealBroken, SealingKey, content_tag, seal, unseal

WAL_FOLDER = "replica/wal/"
FORMAT = "1"


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

    def __init__(self, storage: S3Storage, destination: DestinationConfig, key: SealingKey) -> None:
        self.storage = storage
        self.destination = destination
        self.key = key
        self.prefix = wal_prefix(destination)

    def describe(self) -> str:
        """Return where the archive is, for messages: `destination 'offsite' (bucket b, wal/)`."""
        return f"destination '{self.destination.name}' (bucket '{self.destination.bucket}', {self.prefix})"

    def object_key(self, name: str) -> str:
        """Return the object key of a WAL file name."""
        return self.prefix + name

    def push(self, name: str, content: bytes) -> Literal["stored", "present"]:
        """Store one WAL file; return "stored", or "present" when an object of that name already holds the same
        content. Raises WalConflict when it holds other content, StorageError when it cannot be stored."""
        key = self.object_key(name)
        tag = content_tag(self.key, name, content)
        existing = self.storage.head(self.destination.bucket, key)
        if existing is not None:
            if existing.metadata.get("content-tag") == tag:
                return "present"
            raise WalConflict(
                f"{self.describe()}: {name} is already archived with other content; refusing to replace it (is "
                "another server archiving into this job's destinations, or was the cluster re-created?)"
            )
        sealed = seal(self.key, name, content)
        metadata = {
            "format": FORMAT,
            "sha256": hashlib.sha256(sealed).hexdigest(),
            "content-tag": tag,
            "content-bytes": str(len(content)),
        }
        self.storage.put_bytes(self.destination.bucket, key, sealed, metadata)
        return "stored"

    def fetch(self, name: str) -> bytes | None:
        """Return a WAL file's content, or None when this destination has none of that name. Raises WalDamaged when
        the stored object fails its digest or authentication, StorageError when it cannot be read."""
        key = self.object_key(name)
        found = self.storage.get_bytes(self.destination.bucket, key)
        if found is None:
            return None
        sealed, metadata = found
        if hashlib.sha256(sealed).hexdigest() != metadata.get("sha256"):
            raise WalDamaged(f"{self.describe()}: {name} is damaged: its bytes no longer match their SHA-256")
        try:
            content = unseal(self.key, name, sealed)
        except SealBroken as error:
            raise WalDamaged(f"{self.describe()}: {name} does not open: {error}") from None
        if content_tag(self.key, name, content) != metadata.get("content-tag"):
            raise WalDamaged(f"{self.describe()}: {name} opens but its content tag differs")
        return content

    def intact_at_rest(self, name: str) -> bool | None:
        """Return whether the stored bytes still match their recorded SHA-256 (no key needed), or None when there
        is no such object. Raises StorageError."""
        key = self.object_key(name)
        found = self.storage.head(self.destination.bucket, key)
        if found is None:
            return None
        digest = self.storage.sha256(self.destination.bucket, key)
        return digest is not None and digest == found.metadata.get("sha256")

    def stored(self, start_after: str | None = None) -> Iterator[StoredWal]:
        """Yield every archived file in name order (only those named after `start_after` when given). Raises
        StorageError."""
        after = self.object_key(start_after) if start_after else None
        for item in self.storage.objects(self.destination.bucket, self.prefix, after):
            name = item.key[len(self.prefix) :]
            if "/" not in name:
                yield StoredWal(name, item.key, item.size, item.stored_at)

    def delete(self, names: Iterable[str]) -> None:
        """Delete archived files by name (retention). Raises StorageError."""
        keys = [self.object_key(name) for name in names]
        if keys:
            self.storage.delete_keys(self.destination.bucket, keys)
