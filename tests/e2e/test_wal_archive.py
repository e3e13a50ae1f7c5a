"""`replica wal-push` and `wal-fetch` (PostgreSQL's archive_command and restore_command) against moto's S3 server:
every destination holds each file sealed, a repeated push is harmless, a different file under an archived name is
refused, a file missing or damaged on one destination comes from another, and an unreachable destination fails the
push until it is back, with nothing lost or doubled."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, assert_ok
from tests.support.s3server import free_port

JOB = "walarchive"
SEGMENT = "000000010000000000000003"
MARKER = b"marker-of-plain-wal-content"


def _job(deployment: Deployment, destinations: list[dict[str, Any]]) -> None:
    store = {"kind": "postgresql", "database": "test", "mode": "physical"}
    deployment.write_job(JOB, store, destinations)


def _segment(folder: Path, name: str = SEGMENT, seed: bytes = b"a") -> Path:
    """Write a 1 MiB WAL-like file: the marker, random bytes, then zeros (as a switched segment's tail)."""
    path = folder / name
    path.write_bytes(MARKER + hashlib.sha256(seed).digest() * 4096 + os.urandom(64 * 1024) + bytes(800 * 1024))
    return path


def _pushed(deployment: Deployment, folder: Path, name: str, seed: bytes) -> Path:
    """Write a WAL-like file and archive it; return its path."""
    path = _segment(folder, name, seed)
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(path)))
    return path


def _objects(deployment: Deployment, bucket: str) -> dict[str, dict[str, Any]]:
    client = deployment.s3.client()
    found = {}
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"]] = {"etag": item["ETag"], "metadata": head["Metadata"], "size": item["Size"]}
    return found


@pytest.fixture(scope="module")
def destinations(deployment: Deployment) -> list[dict[str, Any]]:
    """GIVEN a physical PostgreSQL job with a primary and an offsite bucket."""
    chosen = deployment.two_destinations("wal")
    _job(deployment, chosen)
    return chosen


def test_a_pushed_file_is_sealed_on_every_destination_and_fetched_back_intact(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    segment = _segment(tmp_path)
    # WHEN the server archives a segment twice (PostgreSQL repeats a push whose answer it did not see)
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(segment)))
    before = {d["bucket"]: _objects(deployment, d["bucket"]) for d in destinations}
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(segment)))
    # THEN each destination holds one sealed object, unchanged by the second push, with no plain content in it
    for destination in destinations:
        objects = _objects(deployment, destination["bucket"])
        assert objects == before[destination["bucket"]]
        key = f"{destination['prefix']}/replica/wal/{JOB}/{SEGMENT}"
        assert list(objects) == [key, key.replace(SEGMENT, "key.json")]
        stored = deployment.s3.client().get_object(Bucket=destination["bucket"], Key=key)["Body"].read()
        assert MARKER not in stored
        assert objects[key]["size"] < segment.stat().st_size / 2  # compressed
        assert objects[key]["metadata"]["sha256"] == hashlib.sha256(stored).hexdigest()
    # AND each destination gives the file back byte for byte
    for destination in destinations:
        fetched = tmp_path / f"fetched-{destination['name']}"
        assert_ok(
            deployment.replica("wal-fetch", "--job", JOB, "--destination", destination["name"], SEGMENT, str(fetched))
        )
        assert fetched.read_bytes() == segment.read_bytes()


def test_another_file_under_an_archived_name_is_refused_and_the_archive_kept(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    name = "000000010000000000000004"
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(_segment(first, name, b"first"))))
    kept = _objects(deployment, destinations[0]["bucket"])
    # WHEN a different file arrives under the same name (a second cluster archiving into the same job)
    result = deployment.replica("wal-push", "--job", JOB, str(_segment(other, name, b"second")))
    # THEN the push fails loudly and the archived file is untouched
    assert result.returncode != 0
    assert "already archived with other content" in result.stderr
    assert _objects(deployment, destinations[0]["bucket"]) == kept


def test_a_file_missing_or_damaged_on_the_primary_comes_from_the_copy(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    name = "000000010000000000000005"
    segment = _pushed(deployment, tmp_path, name, b"fallback")
    primary, offsite = destinations
    client = deployment.s3.client()
    primary_key = f"{primary['prefix']}/replica/wal/{JOB}/{name}"
    # GIVEN the primary's object damaged at rest (one byte flipped, its metadata kept)
    stored = client.get_object(Bucket=primary["bucket"], Key=primary_key)
    damaged = bytearray(stored["Body"].read())
    damaged[len(damaged) // 2] ^= 0x01
    client.put_object(Bucket=primary["bucket"], Key=primary_key, Body=bytes(damaged), Metadata=stored["Metadata"])
    # WHEN recovery asks for it
    fetched = tmp_path / "RECOVERYXLOG"
    result = deployment.replica("wal-fetch", "--job", JOB, name, str(fetched))
    # THEN the copy's intact file is written, and the server's log says why
    assert_ok(result)
    assert fetched.read_bytes() == segment.read_bytes()
    assert "taken from 'offsite'" in result.stderr and "damaged" in result.stderr
    # AND with the copy's object gone too, recovery must stop (126), not end early (1); nothing is written
    client.delete_object(Bucket=offsite["bucket"], Key=f"{offsite['prefix']}/replica/wal/{JOB}/{name}")
    fetched.unlink()
    result = deployment.replica("wal-fetch", "--job", JOB, name, str(fetched))
    assert result.returncode == 126, result.stderr
    assert "damaged" in result.stderr
    assert not fetched.exists()


def test_a_file_archived_nowhere_is_the_end_of_the_archive(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    # WHEN recovery asks for the segment after the last one (as it always does at the end)
    fetched = tmp_path / "RECOVERYXLOG"
    result = deployment.replica("wal-fetch", "--job", JOB, "000000010000000000000099", str(fetched))
    # THEN exit 1, silently, and nothing written
    assert (result.returncode, result.stderr) == (1, "")
    assert not fetched.exists()


def test_an_unreachable_copy_fails_the_push_until_it_is_back_with_nothing_lost_or_doubled(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    name = "000000010000000000000006"
    segment = _segment(tmp_path, name, b"outage")
    primary, offsite = destinations
    # GIVEN the offsite endpoint down (nothing listens on its port)
    _job(deployment, [primary, {**offsite, "endpoint_url": f"http://127.0.0.1:{free_port()}"}])
    try:
        # WHEN the server archives a segment
        result = deployment.replica("wal-push", "--job", JOB, str(segment))
        # THEN the push fails (PostgreSQL keeps the file and calls again), naming the unreachable destination
        assert result.returncode == 3, result.stderr
        assert f"{name} not archived on destination 'offsite'" in result.stderr and "unreachable" in result.stderr
        # WHEN the endpoint is back and the server retries
    finally:
        _job(deployment, destinations)
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(segment)))
    # THEN both hold the segment exactly once, and the copy's opens to the same bytes
    for destination in destinations:
        keys = [key for key in _objects(deployment, destination["bucket"]) if key.endswith(name)]
        assert keys == [f"{destination['prefix']}/replica/wal/{JOB}/{name}"]
    fetched = tmp_path / "from-offsite"
    assert_ok(deployment.replica("wal-fetch", "--job", JOB, "--destination", "offsite", name, str(fetched)))
    assert fetched.read_bytes() == segment.read_bytes()


def test_a_partial_segment_is_archived_and_a_restore_from_the_copy_alone_works_with_the_primary_down(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    name = "000000010000000000000008.partial"
    # WHEN a promoted standby archives the last segment of its old timeline
    # THEN it is stored (no usage error: the archiver would retry it forever while pg_wal fills up)
    partial = _pushed(deployment, tmp_path, name, b"partial")
    primary, offsite = destinations
    # GIVEN then the primary's endpoint down (nothing listens on its port)
    _job(deployment, [{**primary, "endpoint_url": f"http://127.0.0.1:{free_port()}"}, offsite])
    try:
        # WHEN recovery from the copy asks the copy alone for a file it has
        fetched = tmp_path / "RECOVERYXLOG"
        assert_ok(deployment.replica("wal-fetch", "--job", JOB, "--only", "offsite", name, str(fetched)))
        # THEN it is written
        assert fetched.read_bytes() == partial.read_bytes()
        # WHEN it asks for a file the copy does not have (as recovery does first: a future timeline's history)
        result = deployment.replica("wal-fetch", "--job", JOB, "--only", "offsite", "00000002.history", str(fetched))
        # THEN exit 1 (recovery goes on), not 126: the copy's answer is final; the unreachable primary is not asked
        assert (result.returncode, result.stderr) == (1, "")
    finally:
        _job(deployment, destinations)


def test_two_jobs_sharing_a_repository_archive_apart_each_with_its_own_key(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN a second physical job on the same destinations (its own cluster: other content under the same names)
    other = "walarchive2"
    deployment.write_job(other, {"kind": "postgresql", "database": "test", "mode": "physical"}, destinations)
    name = "000000010000000000000009"
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    # WHEN both archive a segment of the same name
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(_segment(ours, name, b"ours"))))
    assert_ok(deployment.replica("wal-push", "--job", other, str(_segment(theirs, name, b"theirs"))))
    # THEN neither push was refused as a conflict, the second job's archive gives back its own file, and each
    # archive (job and destination) has its own wrapped key
    fetched = tmp_path / "fetched"
    assert_ok(deployment.replica("wal-fetch", "--job", other, "--only", "offsite", name, str(fetched)))
    assert fetched.read_bytes() == (theirs / name).read_bytes()
    client = deployment.s3.client()
    key_files = {
        client.get_object(Bucket=d["bucket"], Key=f"{d['prefix']}/replica/wal/{job}/key.json")["Body"].read()
        for d in destinations
        for job in (JOB, other)
    }
    assert len(key_files) == 4


def test_only_wal_files_of_physical_jobs_are_archived(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    stray = tmp_path / "postgresql.conf"
    stray.write_text("not a WAL file")
    result = deployment.replica("wal-push", "--job", JOB, str(stray))
    assert result.returncode == 2
    assert "not a WAL segment" in result.stderr
    deployment.write_job("logicaldb", {"kind": "postgresql", "database": "test"}, destinations)
    result = deployment.replica("wal-push", "--job", "logicaldb", str(_segment(tmp_path)))
    assert result.returncode == 2
    assert "not PostgreSQL in mode 'physical'" in result.stderr


def test_a_key_file_gone_while_wal_remains_is_refused_not_replaced(
    deployment: Deployment, destinations: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN an archive with WAL in it whose key file was deleted (the WAL cannot be opened without it)
    assert_ok(deployment.replica("wal-push", "--job", JOB, str(_segment(tmp_path, "000000010000000000000010"))))
    primary = destinations[0]
    key_file = f"{primary['prefix']}/replica/wal/{JOB}/key.json"
    deployment.s3.client().delete_object(Bucket=primary["bucket"], Key=key_file)
    # WHEN the server archives the next segment
    result = deployment.replica("wal-push", "--job", JOB, str(_segment(tmp_path, "000000010000000000000011")))
    # THEN the push fails loudly, and no new key hides the loss
    assert result.returncode != 0
    assert "key.json is gone while WAL files remain" in result.stderr
    listed = deployment.s3.client().list_objects_v2(Bucket=primary["bucket"], Prefix=key_file)
    assert listed.get("KeyCount", 0) == 0
