"""The S3 probe (storage/s3.S3Storage.probe_bucket) against the fault proxy: each S3 answer becomes its error class.

A HEAD's error has no body, so a RequestTimeTooSkewed arrives as a bare 403: the endpoint's Date header tells it
from refused credentials. A short burst of throttling is tried again within the probe's deadline.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest

from replica.errors import ClockSkew, StorageAccessDenied, StorageThrottled
from replica.storage.s3 import S3Storage
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server

PROBE_TIMEOUT_SECONDS = 1.0


@pytest.fixture
def bucket(s3_server: S3Server, fault_proxy: FaultProxy) -> Iterator[str]:
    name = f"probe-{secrets.token_hex(4)}"
    s3_server.create_bucket(name)
    yield name
    fault_proxy.clear()
    s3_server.delete_bucket(name)


@pytest.fixture
def storage(fault_proxy: FaultProxy) -> S3Storage:
    return S3Storage(
        endpoint_url=fault_proxy.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        timeout_seconds=PROBE_TIMEOUT_SECONDS,
    )


def test_a_short_burst_of_slow_down_does_not_fail_the_probe(
    fault_proxy: FaultProxy, storage: S3Storage, bucket: str
) -> None:
    # GIVEN the endpoint throttles the next 3 requests (boto3 alone tries twice)
    fault = fault_proxy.inject(Fault.slow_down(first=3))
    # WHEN the bucket is probed, THEN the probe passes once the burst is over
    storage.probe_bucket(bucket)
    assert fault.served == 3


def test_persistent_slow_down_fails_the_probe_as_throttled_at_its_deadline(
    fault_proxy: FaultProxy, storage: S3Storage, bucket: str
) -> None:
    fault_proxy.inject(Fault.slow_down())
    started = time.monotonic()
    with pytest.raises(StorageThrottled) as throttled:
        storage.probe_bucket(bucket)
    # boto3's own backoff may carry the last try up to a second past the deadline
    assert PROBE_TIMEOUT_SECONDS * 0.5 <= time.monotonic() - started < PROBE_TIMEOUT_SECONDS + 2
    assert f"bucket '{bucket}'" in str(throttled.value) and "503" in str(throttled.value)


def test_a_bare_403_from_a_skewed_clock_is_clock_skew_and_one_from_a_true_clock_is_denied(
    fault_proxy: FaultProxy, storage: S3Storage, bucket: str
) -> None:
    fault_proxy.inject(Fault.clock_skew(offset_seconds=-2 * 3600))
    with pytest.raises(ClockSkew) as skewed:
        storage.probe_bucket(bucket)
    assert re.search(r"endpoint's clock is 120 min behind this host's; fix .* \(NTP\)", str(skewed.value))
    fault_proxy.clear()
    fault_proxy.inject(Fault.access_denied())
    with pytest.raises(StorageAccessDenied):
        storage.probe_bucket(bucket)


def test_request_time_too_skewed_in_a_body_is_clock_skew_whatever_the_date(
    fault_proxy: FaultProxy, storage: S3Storage, bucket: str
) -> None:
    fault_proxy.inject(Fault.clock_skew(offset_seconds=0, methods={"GET"}))
    with pytest.raises(ClockSkew) as skewed:
        storage.get_json(bucket, "restic/replica/fingerprints/x.json")
    assert "RequestTimeTooSkewed" in str(skewed.value)
