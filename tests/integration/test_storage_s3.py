"""storage/s3.S3Storage against moto's HTTP server, a closed port and an endpoint that never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from replica.errors import BucketMissing, StorageError, StorageUnreachable
from replica.storage.s3 import S3Storage
from tests.integration.conftest import unique_name
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, free_port


def storage_at(endpoint_url: str | None, timeout_seconds: float = 5.0) -> S3Storage:
    """Return an S3Storage with moto's test credentials."""
    return S3Storage(
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        timeout_seconds=timeout_seconds,
    )


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts TCP connections and never answers (restic hangs forever against one)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept_and_stay_silent() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        with contextlib.suppress(OSError):
            connection.close()
    listener.close()


def test_probe_bucket_accepts_an_existing_bucket(s3_server: S3Server, bucket: str) -> None:
    storage_at(s3_server.endpoint_url).probe_bucket(bucket)


def test_probe_bucket_reports_a_missing_bucket_by_name(s3_server: S3Server) -> None:
    missing = unique_name("replica-it-missing")

    with pytest.raises(BucketMissing) as info:
        storage_at(s3_server.endpoint_url).probe_bucket(missing)

    assert f"'{missing}'" in str(info.value)
    assert s3_server.endpoint_url in str(info.value)


def test_probe_endpoint_accepts_a_live_endpoint(s3_server: S3Server) -> None:
    storage_at(s3_server.endpoint_url).probe_endpoint()


def test_closed_port_is_unreachable() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = storage_at(endpoint)

    with pytest.raises(StorageUnreachable, match=r"127\.0\.0\.1"):
        storage.probe_bucket("anything")
    with pytest.raises(StorageUnreachable):
        storage.probe_endpoint()


def test_silent_endpoint_is_unreachable_within_the_deadline(silent_endpoint: str) -> None:
    storage = storage_at(silent_endpoint, timeout_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(StorageUnreachable, match="no answer within the deadline") as info:
        storage.probe_bucket("quiet-bucket")
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert "'quiet-bucket'" in str(info.value)


def test_get_json_from_a_silent_endpoint_is_unreachable(silent_endpoint: str) -> None:
    storage = storage_at(silent_endpoint, timeout_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(StorageUnreachable, match=r"while trying to read state\.json"):
        storage.get_json("quiet-bucket", "state.json")

    assert time.monotonic() - started < 10


def test_json_documents_round_trip(s3_server: S3Server, bucket: str) -> None:
    storage = storage_at(s3_server.endpoint_url)
    document = {"job": "billing", "snapshots": ["a1", "b2"], "bytes": 123_456_789, "note": "Zürich ✓", "gone": None}

    storage.put_json(bucket, "replica/state.json", document)

    assert storage.get_json(bucket, "replica/state.json") == document
    stored = s3_server.client().head_object(Bucket=bucket, Key="replica/state.json")
    assert stored["ContentType"] == "application/json"


def test_put_json_overwrites(s3_server: S3Server, bucket: str) -> None:
    storage = storage_at(s3_server.endpoint_url)

    storage.put_json(bucket, "state.json", {"version": 1})
    storage.put_json(bucket, "state.json", {"version": 2})

    assert storage.get_json(bucket, "state.json") == {"version": 2}


def test_get_json_of_a_missing_key_is_none(s3_server: S3Server, bucket: str) -> None:
    assert storage_at(s3_server.endpoint_url).get_json(bucket, "no/such/key.json") is None


def test_json_in_a_missing_bucket_is_bucket_missing(s3_server: S3Server) -> None:
    storage = storage_at(s3_server.endpoint_url)
    missing = unique_name("replica-it-missing")

    with pytest.raises(BucketMissing, match=missing):
        storage.put_json(missing, "state.json", {"a": 1})
    with pytest.raises(BucketMissing, match=missing):
        storage.get_json(missing, "state.json")


@pytest.mark.parametrize(
    "endpoint_url",
    ["localhost:9000", "ftp://127.0.0.1:21", "http://127.0.0.1:9000/bucket", "http://", "http://host name"],
)
def test_constructor_rejects_a_malformed_endpoint(endpoint_url: str) -> None:
    with pytest.raises(StorageError, match="must look like"):
        storage_at(endpoint_url)


def test_constructor_accepts_https_and_no_endpoint() -> None:
    assert storage_at("https://s3.example.com:8443").location == "https://s3.example.com:8443"
    assert storage_at(None).location == f"AWS S3 ({REGION})"


def test_get_json_of_a_damaged_document_is_a_storage_error(s3_server: S3Server, bucket: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key="state.json", Body=b"{not json")

    with pytest.raises(StorageError, match=r"state\.json"):
        storage_at(s3_server.endpoint_url).get_json(bucket, "state.json")


def test_object_lock_state_of_a_locked_and_a_plain_bucket(s3_server: S3Server, bucket: str) -> None:
    # GIVEN a bucket with Object Lock and a default COMPLIANCE retention counted in years, and a plain bucket
    client = s3_server.client()
    locked = unique_name("replica-it-worm")
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 7}},
        },
    )
    storage = storage_at(s3_server.endpoint_url)

    # WHEN their state is read THEN each is told apart (an unreadable state: see tests/integration/test_least_privilege)
    assert storage.object_lock(locked) == {
        "enabled": True,
        "mode": "COMPLIANCE",
        "retention_days": None,
        "retention_years": 7,
    }
    assert storage.object_lock(bucket) == {
        "enabled": False,
        "mode": None,
        "retention_days": None,
        "retention_years": None,
    }
    client.delete_bucket(Bucket=locked)
