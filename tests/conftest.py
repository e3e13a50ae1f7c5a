"""Fixtures of the whole suite."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.catalogs import CATALOG_KINDS, selected_catalog_kind

SYNC_DELAY = "repl-diskless-sync-delay"


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--catalog`: the catalog of the e2e deployments (tests/e2e/conftest.py), here so that it parses wherever
    pytest starts."""
    parser.addoption(
        "--catalog",
        choices=CATALOG_KINDS,
        default=None,
        help="catalog of the e2e and fault suites' deployments: sqlite (default) or postgresql, a fresh database "
        "per deployment on the local server (also: REPLICA_TEST_CATALOG)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL variant of a test module (its `CATALOG`) when every deployment uses that kind
    already: the same tests, twice over."""
    kind = selected_catalog_kind(config)
    redundant = [item for item in items if getattr(getattr(item, "module", None), "CATALOG", None) == kind]
    if redundant:
        config.hook.pytest_deselected(items=redundant)
        items[:] = [item for item in items if item not in redundant]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put back the folder modes opened for postgres when no live pytest process holds them any more: a worker that
    was killed never put them back itself."""
    from tests.support.pg_cluster import restore_folder_modes

    restore_folder_modes()


@contextlib.contextmanager
def _workers_state(name: str) -> Iterator[dict[str, Any]]:
    """Yield the state the pytest workers of this run share under `name` (one process at a time), then store it.

    pytest-xdist runs a session fixture once per worker: what the first worker changes on a shared server, the last
    one to finish must put back.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
    path = Path(tempfile.gettempdir()) / f"replica-tests-{name}-{run}.json"
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        state: dict[str, Any] = json.loads(text) if text else {"workers": 0}
        yield state
        if state["workers"]:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state))
        else:
            path.unlink()


@pytest.fixture(scope="session", autouse=True)
def _redis_without_diskless_sync_delay() -> Iterator[None]:
    """Set the test Redis server's `repl-diskless-sync-delay` to 0 while the suite runs, then put it back.

    `redis-cli --rdb` waits that delay (5 s by default) before every transfer, so each Redis backup in the suite
    would cost 5 s of idle time. replica's code path is the same either way; only the server's wait changes.
    """
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        with _workers_state("redis-sync-delay") as state:
            if state["workers"] == 0:
                state["previous"] = client.config_get(SYNC_DELAY)[SYNC_DELAY]
                client.config_set(SYNC_DELAY, 0)
            state["workers"] += 1
    except redis.RedisError:
        yield  # no Redis here: the Redis tests fail on their own, with their own message
        return
    try:
        yield
    finally:
        with _workers_state("redis-sync-delay") as state:
            state["workers"] -= 1
            if state["workers"] == 0:
                with contextlib.suppress(redis.RedisError):
                    client.config_set(SYNC_DELAY, state["previous"])
