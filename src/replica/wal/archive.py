"""The WAL archive of one job at one destination: sealed objects under `<prefix>/replica/wal/<job>/NAME`, and the
archive's wrapped key `key.json` beside them (see `keys`). Each job has its own folder: two physical jobs sharing a
repository would otherwise archive the same segment names into one place.

Each object carries, as metadata, what a check needs without the key (see `sealing`): `sha256` of the stored bytes,
and `content-tag`, the keyed tag of the content that makes a repeated push recognisable. `content-bytes` is the
WAL file's own size (a segment's is the cluster's segment size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from replica.config.models import DestinationConfig
from replica.errors import WalConflict, WalDamaged
from replica.storage.s3 import S3Storage
from replica.wal.keys import KEY_FILE, KeyFileRefused, cache_key, cached_key, new_key_file, open_key_file
from replica.wal.sealing import SealBroken, SealingKey, content_tag, seal, unseal

WAL_FOLDER = "replica/wal/"
FORMAT = "1"


def wal_prefix(destination: DestinationConfig, job: str) -> str:
    """Return the key prefix of a job's WAL archive at a destination (ends with `/`)."""
    folder = f"{WAL_FOLDER}{job}/"
    return f"{destination.prefix}/{folder}" if destination.prefix else folder


@dataclass(frozen=True)
class StoredWal:
    """One archived file as listed: its WAL file name, object key, stored size and when it was stored."""

    name: str
    key: str
    stored_bytes: int
    stored_at: datetime


class WalArchive:
    """The WAL objects of one job at one destination, sealed with the archive's key (wrapped under the destination's
    password in `key.json`; created by the first push, cached unwrapped in `key_cache` when that is writable)."""

    def __init__(
        self,
        storage: S3Storage,
        destination: DestinationConfig,
        job: str,
        password: SecretStr,
        key_cache: Path | None = None,
    ) -> None:
        self.storage = storage
        self.destination = destination
        self.job = job
        self.prefix = wal_prefix(destination, job)
        self._password = password
        self._key_cache = key_cache
        self._key: SealingKey | None = None

    def key(self, *, create: bool) -> SealingKey | None:
        """Return the archive's key, creating its key file when there is none and `create` (None without one and
        not `create`: nothing was ever pushed). Raises WalDamaged when the key file does not open (wrong password,
        damaged, weak), StorageError when it cannot be read or written."""
        if self._key is not None:
            return self._key
        location = self.object_key(KEY_FILE)
        found = self.storage.get_bytes(self.destination.bucket, location)
        if found is None:
            if not create:
                return None
            if any(stored.name != KEY_FILE for stored in self.stored()):
                raise WalDamaged(
                    f"{self.describe()}: {KEY_FILE} is gone while WAL files remain: they cannot be opened without it, "
                    "and a new key would hide that; put it back from a backup of the bucket"
                )
            content, key = new_key_file(self._password, self.job)
            # Only if still absent: of two first pushes racing, the second keeps the first one's key.
            self.storage.put_bytes(self.destination.bucket, location, content, {"format": FORMAT}, if_absent=True)
            found = self.storage.get_bytes(self.destination.bucket, location)
            if found is None:
                raise WalDamaged(f"{self.describe()}: {KEY_FILE} vanished right after it was written")
            if found[0] == content:
                self._key = key
                self._cache(content, key)
                return key
        content = found[0]
        cached = cached_key(self._key_cache, content, self.job) if self._key_cache is not None else None
        if cached is None:
            try:
                cached = open_key_file(content, self._password, self.job)
            except KeyFileRefused as error:
                raise WalDamaged(f"{self.describe()}: {KEY_FILE} refused: {error}") from None
            self._cache(content, cached)
        self._key = cached
        return cached

    def _cache(self, content: bytes, key: SealingKey) -> None:
        if self._key_cache is not None:
            cache_key(self._key_cache, content, self.job, key)

    def _sealing_key(self) -> SealingKey:
        key = self.key(create=True)
        assert key is not None  # created when missing
        return key

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
        sealing_key = self._sealing_key()
        tag = content_tag(sealing_key, name, content)
        existing = self.storage.head(self.destination.bucket, key)
        if existing is not None:
            if existing.metadata.get("content-tag") == tag:
                return "present"
            raise WalConflict(
                f"{self.describe()}: {name} is already archived with other content; refusing to replace it (is "
                "another server archiving into this job's destinations, or was the cluster re-created?)"
            )
        sealed = seal(sealing_key, name, content)
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
        sealing_key = self.key(create=False)
        if sealing_key is None:
            raise WalDamaged(f"{self.describe()}: {name} is archived but the archive's {KEY_FILE} is missing")
        try:
            content = unseal(sealing_key, name, sealed)
        except SealBroken as error:
            raise WalDamaged(f"{self.describe()}: {name} does not open: {error}") from None
        if content_tag(sealing_key, name, content) != metadata.get("content-tag"):
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
            if "/" not in name and name != KEY_FILE:
                yield StoredWal(name, item.key, item.size, item.stored_at)

    def delete(self, names: Iterable[str]) -> None:
        """Delete archived files by name (retention). Raises StorageError."""
        keys = [self.object_key(name) for name in names]
        if keys:
            self.storage.delete_keys(self.destination.bucket, keys)
