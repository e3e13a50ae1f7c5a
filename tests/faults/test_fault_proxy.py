"""The fault proxy itself, driven with boto3: transparent without a fault, and each fault does what it says.

The S3 failure cases (test_s3_faults.py) trust these faults; here each is seen from the client's side, in
milliseconds, against moto through the proxy.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError, ResponseStreamingError

from tests.support.faultproxy import Fault, FaultProxy
from tests.support.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server

BODY = bytes(range(256)) * 1024  # 256 KiB, several pieces of the proxy's stream


def client_of(proxy: FaultProxy, read_timeout: float = 10.0) -> Any:
    """Return a boto3 client that reaches moto through the proxy and never retries (each request is seen once)."""
    return boto3.client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(
            retries={"total_max_attempts": 1},
            read_timeout=read_timeout,
            s3={"addressing_style": "path"},
            response_checksum_validation="when_required",  # see the bytes as sent, not a checksum error
        ),
    )


@pytest.fixture
def bucket(s3_server: S3Server, fault_proxy: FaultProxy) -> Iterator[str]:
    """A bucket holding `data/pack` and `index/one` (BODY each), written through the proxy; faults cleared after."""
    name = f"proxy-{secrets.token_hex(4)}"
    s3_server.create_bucket(name)
    client = client_of(fault_proxy)
    client.put_object(Bucket=name, Key="repo/data/pack", Body=BODY)
    client.put_object(Bucket=name, Key="repo/index/one", Body=BODY)
    yield name
    fault_proxy.clear()
    s3_server.delete_bucket(name)


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_without_a_fault_every_request_and_body_passes_unchanged(fault_proxy: FaultProxy, bucket: str) -> None:
    client = client_of(fault_proxy)
    # GIVEN objects written through the proxy, WHEN they are read back, listed and deleted through it
    assert client.get_object(Bucket=bucket, Key="repo/data/pack")["Body"].read() == BODY
    assert client.head_object(Bucket=bucket, Key="repo/index/one")["ContentLength"] == len(BODY)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="repo/")["Contents"]
    client.delete_object(Bucket=bucket, Key="repo/index/one")
    # THEN everything arrived as moto answered it, and no fault was served
    assert [item["Key"] for item in listed] == ["repo/data/pack", "repo/index/one"]
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=bucket, Key="repo/index/one")
    assert error_code(missing) == "404"
    assert {request.fault for request in fault_proxy.requests} == {None}


def test_a_status_fault_answers_an_s3_error_for_the_chosen_methods_and_keys_the_first_n_times(
    fault_proxy: FaultProxy, bucket: str
) -> None:
    client = client_of(fault_proxy)
    # GIVEN a SlowDown limited to two GETs of data/ keys
    fault = fault_proxy.inject(Fault.slow_down(methods={"GET"}, key_contains="/data/", first=2))
    # THEN other keys and methods pass
    assert client.get_object(Bucket=bucket, Key="repo/index/one")["Body"].read() == BODY
    client.head_object(Bucket=bucket, Key="repo/data/pack")
    # AND the first two matching GETs get 503 SlowDown with its XML body
    for _ in range(2):
        with pytest.raises(ClientError) as throttled:
            client.get_object(Bucket=bucket, Key="repo/data/pack")
        assert error_code(throttled) == "SlowDown"
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # AND the fault is then spent: the third passes
    assert client.get_object(Bucket=bucket, Key="repo/data/pack")["Body"].read() == BODY
    assert fault.served == 2 and fault_proxy.faults_served >= 2


def test_access_denied_and_clock_skew_answers(fault_proxy: FaultProxy, bucket: str) -> None:
    client = client_of(fault_proxy)
    fault_proxy.inject(Fault.access_denied(methods={"PUT"}))
    with pytest.raises(ClientError) as denied:
        client.put_object(Bucket=bucket, Key="repo/data/new", Body=b"x")
    assert error_code(denied) == "AccessDenied"
    fault_proxy.clear()
    # A skewed server says so in the body of a GET, and only through its Date header in a HEAD's bare 403
    fault_proxy.inject(Fault.clock_skew(offset_seconds=3600))
    with pytest.raises(ClientError) as skewed:
        client.get_object(Bucket=bucket, Key="repo/index/one")
    assert error_code(skewed) == "RequestTimeTooSkewed"
    with pytest.raises(ClientError) as bare:
        client.head_bucket(Bucket=bucket)
    assert error_code(bare) == "403"
    server_date = bare.value.response["ResponseMetadata"]["HTTPHeaders"]["date"]
    from email.utils import parsedate_to_datetime

    assert parsedate_to_datetime(server_date).timestamp() - time.time() == pytest.approx(3600, abs=60)


def test_a_hang_keeps_requests_unanswered_until_cleared(fault_proxy: FaultProxy, bucket: str) -> None:
    fault = fault_proxy.inject(Fault.hang(key_contains="/data/"))
    # WHEN a client with a 0.5 s deadline asks for a data key
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        client_of(fault_proxy, read_timeout=0.5).get_object(Bucket=bucket, Key="repo/data/pack")
    # THEN it times out, the fault counted it, and other keys still answer
    assert 0.5 <= time.monotonic() - started < 3
    assert fault.served == 1
    assert client_of(fault_proxy).get_object(Bucket=bucket, Key="repo/index/one")["Body"].read() == BODY
    # AND a request held when the fault is cleared is let go (its connection closed) at once
    outcome: list[BaseException | None] = []

    def held_request() -> None:
        try:
            client_of(fault_proxy, read_timeout=30).get_object(Bucket=bucket, Key="repo/data/pack")
            outcome.append(None)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=held_request)
    thread.start()
    while fault.served < 2:
        time.sleep(0.01)
    fault_proxy.clear()
    thread.join(timeout=5)
    assert outcome and outcome[0] is not None  # no answer, a closed connection


def test_truncate_and_flip_damage_bodies_in_transit_only(fault_proxy: FaultProxy, bucket: str) -> None:
    client = client_of(fault_proxy)
    fault_proxy.inject(Fault.truncate(key_contains="/data/"))
    # A truncated answer announces the whole length and breaks off halfway
    with pytest.raises(ResponseStreamingError):
        client.get_object(Bucket=bucket, Key="repo/data/pack")["Body"].read()
    fault_proxy.clear()
    flip = fault_proxy.inject(Fault.flip(key_contains="/data/"))
    # A flipped answer has its length and one byte in the middle inverted; other keys are untouched
    flipped = client.get_object(Bucket=bucket, Key="repo/data/pack")["Body"].read()
    assert len(flipped) == len(BODY)
    assert [index for index in range(len(BODY)) if flipped[index] != BODY[index]] == [len(BODY) // 2]
    assert client.get_object(Bucket=bucket, Key="repo/index/one")["Body"].read() == BODY
    assert flip.served == 1
    # AND the object at rest never changed
    fault_proxy.clear()
    assert client.get_object(Bucket=bucket, Key="repo/data/pack")["Body"].read() == BODY
