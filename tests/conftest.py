"""Fixtures of the whole suite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture(scope="session", autouse=True)
def _redis_without_diskless_sync_delay() -> Iterator[None]:
    """Set the test Redis server's `repl-diskless-sync-delay` to 0 for the session, then put it back.

    `redis-cli --rdb` waits that delay (5 s by default) before every transfer, so each Redis backup in the suite
    would cost 5 s of idle time. replica's code path is the same either way; only the server's wait changes.
    """
    try:
        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
        previous = client.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"]
        client.config_set("repl-diskless-sync-delay", 0)
    except redis.RedisError:
        yield  # no Redis here: the Redis tests fail on their own, with their own message
        return
    try:
        yield
    finally:
        with contextlib.suppress(redis.RedisError):
            client.config_set("repl-diskless-sync-delay", previous)
