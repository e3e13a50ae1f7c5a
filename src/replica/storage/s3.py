"""S3 behind one class: the URL checked in the constructor, every boto3 error translated here and only here."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from replica.errors import (
    BucketMissing,
    ClockSkew,
    StorageAccessDenied,
    StorageError,
    StorageServerError,
    StorageThrottled,
    StorageUnreachable,
)
from replica.urls import redact_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MISSING_CODES = {"404", "NoSuchBucket", "NotFound"}
MISSING_KEY_CODES = {"NoSuchKey", "404"}
# A conditional write (If-None-Match: *) that found the object there already; 409 when another write was under way.
PRECONDITION_FAILED_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
HASH_CHUNK_BYTES = 1024 * 1024
T = TypeVar("T")
DELETE_BATCH_KEYS = 1000  # S3's limit per DeleteObjects request
# A bucket without Object Lock answers GetObjectLockConfiguration with this code (AWS, MinIO, moto).
NO_OBJECT_LOCK_CODES = {"ObjectLockConfigurationNotFoundError"}
DENIED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
THROTTLED_CODES = {
    "503",
    "429",
    "SlowDown",
    "ServiceUnavailable",
    "TooManyRequests",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
}
SERVER_ERROR_CODES = {"500", "502", "504", "InternalError", "BadGateway", "GatewayTimeout"}
CLOCK_SKEW_CODES = {"RequestTimeTooSkewed", "RequestExpired"}
# S3 refuses a request signed further than this from its own clock. An answer to a HEAD has no body, so its
# RequestTimeTooSkewed arrives as a bare 403: the server's Date header then tells it from refused credentials.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
# Between the probe's tries while the endpoint throttles or fails: a short burst must not fail a backup that
# restic (which retries for ~97 s) would have completed.
PROBE_RETRY_FIRST_DELAY_SECONDS = 0.1
PROBE_RETRY_LAST_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class StoredObject:
    """An object as listed or looked up: key, size in bytes, when it was stored, user metadata (empty when
    listed)."""

    key: str
    size: int
    stored_at: datetime
    metadata: dict[str, str]


class S3Storage:
    """One S3 endpoint (AWS, MinIO, SeaweedFS, moto) with the credentials replica was given."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        timeout_seconds: float,
    ) -> None:
        if endpoint_url is not None and not re.fullmatch(r"https?://[^/\s]+", endpoint_url):
            raise StorageError(f"S3 endpoint '{redact_url(endpoint_url)}' must look like http(s)://host[:port]")
        self.endpoint_url = endpoint_url
        self.timeout_seconds = timeout_seconds
        self.location = redact_url(endpoint_url) if endpoint_url else f"AWS S3 ({region})"

        # A session of its own: boto3's default session is not safe to build clients from in several threads
        # (the daemon's workers); the client itself is.
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
                retries={"total_max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def _translate(self, error: Exception, bucket: str, action: str) -> StorageError:
        where = f"bucket '{bucket}' at {self.location}"
        if isinstance(error, ClientError):
            code = _error_code(error)
            offset = _server_clock_offset_seconds(error)
            if code in CLOCK_SKEW_CODES or (code in DENIED_CODES and abs(offset or 0) > MAX_CLOCK_SKEW_SECONDS):
                return ClockSkew(
                    f"{where}: refused as signed at the wrong time ({code}) while trying to {action}: "
                    f"{_describe_offset(offset)}; fix this host's time (NTP)"
                )
            if code in MISSING_CODES:
                return BucketMissing(f"{where} does not exist (create it with 'replica init JOB')")
            if code in DENIED_CODES:
                return StorageAccessDenied(f"{where}: access denied to {action} ({code}); check the S3 credentials")
            if code in THROTTLED_CODES:
                return StorageThrottled(f"{where}: the endpoint throttles requests ({code}) while trying to {action}")
            if code in SERVER_ERROR_CODES:
                return StorageServerError(
                    f"{where}: the endpoint answers server errors ({code}) while trying to {action}"
                )
            return StorageError(f"{where}: {action} failed: {code or error}")
        if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
            return StorageUnreachable(f"{where}: no answer within the deadline while trying to {action}")
        if isinstance(error, ConnectionError):
            return StorageUnreachable(f"S3 endpoint {self.location} unreachable: {error}")
        return StorageError(f"{where}: {action} failed: {error}")

    def probe_bucket(self, bucket: str) -> None:
        """Return when the bucket exists and answers.

        An endpoint that throttles or answers server errors is tried again until `timeout_seconds` have passed.
        Raises StorageUnreachable, StorageThrottled, StorageServerError, ClockSkew, BucketMissing or
        StorageAccessDenied.
        """
        deadline = time.monotonic() + self.timeout_seconds
        delay = PROBE_RETRY_FIRST_DELAY_SECONDS
        while True:
            try:
                self._client.head_bucket(Bucket=bucket)
                return
            except (ClientError, BotoCoreError) as error:
                failure = self._translate(error, bucket, "reach the bucket")
            transient = isinstance(failure, StorageThrottled | StorageServerError)
            if not transient or time.monotonic() + delay > deadline:
                raise failure
            time.sleep(delay)
            delay = min(delay * 2, PROBE_RETRY_LAST_DELAY_SECONDS)

    def probe_endpoint(self) -> None:
        """Return when the endpoint answers at all (any HTTP answer counts). Raises StorageUnreachable."""
        try:
            self._client.list_buckets()
        except ClientError:
            return
        except BotoCoreError as error:
            raise self._translate(error, "-", "list buckets") from None

    def put_json(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        """Store a small JSON document. Raises StorageError."""
        body = json.dumps(document, sort_keys=True, indent=1).encode()
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, bucket, f"write {key}") from None

    def get_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        """Return a small JSON document, or None when there is no such key. Raises StorageError."""
        found = self.get_bytes(bucket, key)
        if found is None:
            return None
        try:
            document = json.loads(found[0])
        except ValueError:
            raise StorageError(f"bucket '{bucket}' at {self.location}: {key} is not valid JSON") from None
        return document if isinstance(document, dict) else None

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Yield every key of the bucket that starts with `prefix`, in key order. Raises StorageError."""
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, bucket, f"list {prefix}") from None

    def put_bytes(
        self, bucket: str, key: str, body: bytes, metadata: dict[str, str], *, if_absent: bool = False
    ) -> None:
        """Store an object with user metadata; return once the endpoint has it (S3 answers a PUT only when the object
        is durable). The body's MD5 travels along, so bytes damaged on the way are refused. With `if_absent`, an
        object already there is kept (S3's conditional write) and the call returns as if it had written. Raises
        StorageError."""
        content_md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        try:
            if if_absent:
                self._client.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentMD5=content_md5, Metadata=metadata, IfNoneMatch="*"
                )
            else:
                self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=content_md5, Metadata=metadata)
        except ClientError as error:
            if if_absent and _error_code(error) in PRECONDITION_FAILED_CODES:
                return
            raise self._translate(error, bucket, f"write {key}") from None
        except BotoCoreError as error:
            raise self._translate(error, bucket, f"write {key}") from None

    def head(self, bucket: str, key: str) -> StoredObject | None:
        """Return an object's size, time and user metadata, or None when there is no such key. Raises
        StorageError."""
        response = self._unless_missing(bucket, key, lambda: self._client.head_object(Bucket=bucket, Key=key))
        if response is None:
            return None
        return StoredObject(key, response["ContentLength"], response["LastModified"], response.get("Metadata", {}))

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, dict[str, str]] | None:
        """Return an object's bytes and user metadata, or None when there is no such key. For objects of bounded
        size (a WAL segment). Raises StorageError (also when the connection breaks mid-object)."""

        def read() -> tuple[bytes, dict[str, str]]:
            response = self._client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), response.get("Metadata", {})

        return self._unless_missing(bucket, key, read)

    def objects(self, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[StoredObject]:
        """Yield every object whose key starts with `prefix` (and sorts after `start_after`), in key order, without
        metadata. Raises StorageError."""
        arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after:
            arguments["StartAfter"] = start_after
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(**arguments):
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"], item["Size"], item["LastModified"], {})
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, bucket, f"list {prefix}") from None

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete objects by key, a thousand per request. Raises StorageError naming the first key refused."""
        for start in range(0, len(keys), DELETE_BATCH_KEYS):
            batch = keys[start : start + DELETE_BATCH_KEYS]
            try:
                response = self._client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as error:
                raise self._translate(error, bucket, f"delete {batch[0]}") from None
            refused = response.get("Errors", [])
            if refused:
                first = refused[0]
                raise StorageError(
                    f"bucket '{bucket}' at {self.location}: cannot delete {first.get('Key')}: {first.get('Code')}"
                )

    def sha256(self, bucket: str, key: str) -> str | None:
        """Return the hex SHA-256 of an object's bytes, read as a stream (never whole in memory), or None when
        there is no such key. Raises StorageError (also when the connection breaks mid-object)."""

        def read() -> str:
            digest = hashlib.sha256()
            for chunk in self._client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(HASH_CHUNK_BYTES):
                digest.update(chunk)
            return digest.hexdigest()

        return self._unless_missing(bucket, key, read)

    def _unless_missing(self, bucket: str, key: str, read: Callable[[], T]) -> T | None:
        """Return what `read` returns, or None when the endpoint says there is no such key; every other refusal or
        broken connection (mid-object too) raised as the StorageError `_translate` makes of it."""
        try:
            return read()
        except ClientError as error:
            if _error_code(error) in MISSING_KEY_CODES:
                return None
            raise self._translate(error, bucket, f"read {key}") from None
        except BotoCoreError as error:
            raise self._translate(error, bucket, f"read {key}") from None

    def object_lock(self, bucket: str) -> dict[str, Any]:
        """Return the bucket's Object Lock (WORM) state as recorded in the catalog; never raises.

        `{"enabled": True, "mode": "GOVERNANCE" | "COMPLIANCE" | None, "retention_days": N | None,
        "retention_years": N | None}` for a locked bucket (mode and retention None without a default retention),
        `{"enabled": False, ...}` for a bucket without Object Lock, and `{"enabled": None, ..., "detail": why}`
        when the state cannot be read (credentials without `s3:GetBucketObjectLockConfiguration`, an endpoint
        without the API, no answer): a backup never fails for want of knowing it.
        """
        state: dict[str, Any] = {"enabled": None, "mode": None, "retention_days": None, "retention_years": None}
        try:
            configuration = self._client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except ClientError as error:
            code = _error_code(error)
            if code in NO_OBJECT_LOCK_CODES:
                return {**state, "enabled": False}
            return {**state, "detail": f"Object Lock state not readable ({code or 'error'})"}
        except BotoCoreError as error:
            return {**state, "detail": f"Object Lock state not readable ({type(error).__name__})"}
        retention = configuration.get("Rule", {}).get("DefaultRetention", {})
        return {
            **state,
            "enabled": configuration.get("ObjectLockEnabled") == "Enabled",
            "mode": retention.get("Mode"),
            # Either days or years is set; some servers (moto) answer the other as 0.
            "retention_days": retention.get("Days") or None,
            "retention_years": retention.get("Years") or None,
        }


def _error_code(error: ClientError) -> str:
    """Return the S3 error code of a refused request (`NoSuchKey`, `403`...), or an empty string."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _server_clock_offset_seconds(error: ClientError) -> float | None:
    """Return how far the endpoint's clock (its answer's Date header) is ahead of this host's, or None."""
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("date")
    if not date:
        return None
    try:
        server_time = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    return server_time - time.time()


def _describe_offset(offset_seconds: float | None) -> str:
    if offset_seconds is None:
        return "this host's clock and the endpoint's differ too much"
    direction = "ahead of" if offset_seconds > 0 else "behind"
    # Minutes: a Date header has whole seconds, and skew that matters is many minutes
    return f"the endpoint's clock is {abs(offset_seconds) / 60:.0f} min {direction} this host's"
