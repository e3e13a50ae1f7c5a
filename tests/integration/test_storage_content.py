"""storage/content.confirm_at_rest against moto's HTTP server: repository files re-downloaded and hashed by name."""

from __future__ import annotations

import hashlib
import os

import pytest

from replica.errors import StorageUnreachable
from replica.storage.content import confirm_at_rest
from replica.storage.s3 import S3Storage
from tests.integration.test_storage_s3 import storage_at
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, free_port

PREFIX = "restic/billing"


def put_named(s3_server: S3Server, bucket: str, folder: str, body: bytes, *, damage: bool = False) -> str:
    """Store `body` under the name restic would give it (its SHA-256), flipped after naming when `damage`; return
    the path relative to the repository."""
    name = hashlib.sha256(body).hexdigest()
    path = f"data/{name[:2]}/{name}" if folder == "data" else f"{folder}/{name}"
    stored = bytes(byte ^ 0xFF for byte in body[:16]) + body[16:] if damage else body
    s3_server.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{path}", Body=stored)
    return path


def test_suspects_are_found_damaged_missing_or_intact(s3_server: S3Server, bucket: str) -> None:
    # GIVEN a pack larger than one read chunk that is intact, a damaged pack, an index file and a pack that is gone
    storage = storage_at(s3_server.endpoint_url)
    intact = put_named(s3_server, bucket, "data", os.urandom(3 * 1024 * 1024 + 17))
    damaged = put_named(s3_server, bucket, "data", os.urandom(4096), damage=True)
    index = put_named(s3_server, bucket, "index", os.urandom(512))
    gone = "data/ab/" + "ab" * 32
    # WHEN they are confirmed, the index by the shortened id restic prints
    found = confirm_at_rest(storage, bucket, PREFIX, [intact, damaged, index[:16], gone])
    # THEN the damaged pack and the missing one confirm damage; the others are intact
    assert found.confirmed
    (damage,) = found.damaged
    assert damage.key == f"{PREFIX}/{damaged}" and damage.expected_sha256 == damaged.rsplit("/", 1)[1]
    assert damage.found_sha256 != damage.expected_sha256
    assert found.missing == (f"{PREFIX}/{gone}",)
    assert found.intact == (f"{PREFIX}/{intact}", f"{PREFIX}/{index}")
    assert not found.swept
    assert f"1 damaged at rest: {PREFIX}/{damaged}" in found.describe()


def test_intact_suspects_confirm_nothing(s3_server: S3Server, bucket: str) -> None:
    storage = storage_at(s3_server.endpoint_url)
    pack = put_named(s3_server, bucket, "data", os.urandom(2048))

    found = confirm_at_rest(storage, bucket, PREFIX, [pack])

    assert not found.confirmed
    assert found.intact == (f"{PREFIX}/{pack}",)


def test_without_suspects_every_hashed_file_is_read_but_config_locks_and_sidecars(
    s3_server: S3Server, bucket: str
) -> None:
    # GIVEN a repository with one file of each hashed kind, one damaged snapshot, and files not named by their hash
    storage = storage_at(s3_server.endpoint_url)
    named = [put_named(s3_server, bucket, folder, os.urandom(256)) for folder in ("data", "index", "keys")]
    snapshot = put_named(s3_server, bucket, "snapshots", os.urandom(256), damage=True)
    client = s3_server.client()
    for key in ("config", f"locks/{'cd' * 32}", "replica/fingerprints/4e06424e.json", "data/"):
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{key}", Body=b"not named by its hash")
    # WHEN restic named no file
    found = confirm_at_rest(storage, bucket, PREFIX, [])
    # THEN every data, index, snapshot and key file was read, and only the damaged snapshot counts
    assert found.swept and found.confirmed
    assert [d.key for d in found.damaged] == [f"{PREFIX}/{snapshot}"]
    assert sorted(found.intact) == sorted(f"{PREFIX}/{path}" for path in named)
    assert found.missing == () == found.unsettled


class FlippingStorage(S3Storage):
    """An S3Storage whose reads of one key come back damaged differently each time (bits flipped in transit)."""

    def __init__(self, endpoint_url: str, key: str) -> None:
        super().__init__(
            endpoint_url=endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            timeout_seconds=5,
        )
        self.flipped_key = key
        self.reads = 0

    def sha256(self, bucket: str, key: str) -> str | None:
        if key != self.flipped_key:
            return super().sha256(bucket, key)
        self.reads += 1
        return hashlib.sha256(f"garbled read {self.reads}".encode()).hexdigest()


def test_reads_that_disagree_confirm_nothing(s3_server: S3Server, bucket: str) -> None:
    # GIVEN an intact pack whose every read is damaged differently on the way
    pack = put_named(s3_server, bucket, "data", os.urandom(1024))
    storage = FlippingStorage(s3_server.endpoint_url, f"{PREFIX}/{pack}")
    # WHEN it is confirmed
    found = confirm_at_rest(storage, bucket, PREFIX, [pack])
    # THEN it was read twice, and two different wrong hashes prove nothing about the stored bytes
    assert storage.reads == 2
    assert not found.confirmed
    assert found.unsettled == (f"{PREFIX}/{pack}",)


def test_an_unreachable_endpoint_raises_instead_of_confirming() -> None:
    storage = storage_at(f"http://127.0.0.1:{free_port()}", timeout_seconds=1)

    with pytest.raises(StorageUnreachable):
        confirm_at_rest(storage, "any-bucket", PREFIX, ["data/ab/" + "ab" * 32])
