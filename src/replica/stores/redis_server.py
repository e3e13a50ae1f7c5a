"""A private, throw-away redis-server that loads an RDB file, and checks of RDB files; used by the redis store.

Loopback only, a random password in a 0600 config file, no persistence, the file reached through a symlink in
its own temporary directory (an accidental save cannot rewrite it); always stopped, also when loading fails.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from replica.errors import ProcessFailed, StoreError, last_meaningful_line
from replica.execute import BackgroundProcess, Command, run, start_background

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0
SERVER_STOP_GRACE_SECONDS = 10.0
SERVER_START_ATTEMPTS = 3
READY_POLL_SECONDS = 0.05
MIN_DATABASES = 256  # the throw-away server must have room for every database index the RDB uses
RDB_MAGIC = b"REDIS"
RDB_HEADER_BYTES = 9
REDIS_SERVER = "redis-server"
REDIS_CHECK_RDB = "redis-check-rdb"


# The throw-away server --------------------------------------------------------------------------------------------


@dataclass
class LoadedRdb:
    """A private redis-server that has finished loading an RDB: where to reach it and what it said about it."""

    port: int
    password: str
    databases: int
    version: str
    keys_loaded: int
    keys_expired_at_load: int

    def client(self, database: int = 0) -> redis.Redis:
        """Return a client of one logical database (close it after use)."""
        return server_client(LOOPBACK, self.port, self.password, database, COMMAND_TIMEOUT_SECONDS)

    def keyspace(self) -> dict[int, tuple[int, int]]:
        """Return {database: (keys, keys with a TTL)} of the non-empty databases."""
        with self.client() as client:
            info: dict[str, Any] = client.info("keyspace")
        return {int(name[2:]): (int(row["keys"]), int(row["expires"])) for name, row in info.items()}

    def time_ms(self) -> int:
        """Return the server's clock in milliseconds (the clock expiry is judged by)."""
        with self.client() as client:
            seconds, microseconds = client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000


def server_client(host: str, port: int, password: str | None, database: int, timeout: float) -> redis.Redis:
    return redis.Redis(
        host=host,
        port=port,
        db=database,
        password=password,
        socket_connect_timeout=min(timeout, CONNECT_TIMEOUT_SECONDS),
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _log_reason(log_path: Path) -> str:
    """Return the first warning redis-server logged after start-up (why it refused to load), or its last line."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log"
    boilerplate = ("oO0OoO0Oo", "Redis version=", "Configuration loaded", "Server initialized", "WARNING ")
    for line in lines:
        _, marker, message = line.partition(" # ")
        if marker and not any(text in message for text in boilerplate):
            return message.strip()
    return last_meaningful_line("\n".join(lines[-5:])) or "no log"


@contextlib.contextmanager
def loaded_rdb(rdb_path: Path, *, timeout_seconds: float, databases: int = 0) -> Iterator[LoadedRdb]:
    """Yield a private redis-server that has loaded the RDB at `rdb_path`; the server is stopped on exit.

    Raises StoreError (with redis-server's own reason) when the file is missing or the server refuses it.
    """
    if not rdb_path.is_file():
        raise StoreError(f"no RDB file at {rdb_path}")
    with tempfile.TemporaryDirectory(prefix="replica-redis-") as work_name:
        work = Path(work_name)
        (work / "dump.rdb").symlink_to(rdb_path.absolute())
        password = secrets.token_hex(16)
        config = work / "throwaway.conf"
        config.touch(mode=0o600)
        config.write_text(f"requirepass {password}\n", encoding="utf-8")
        process, loaded = _start_server(work, password, max(databases, MIN_DATABASES), timeout_seconds)
        try:
            yield loaded
        finally:
            process.stop(SERVER_STOP_GRACE_SECONDS)


def _start_server(
    work: Path, password: str, databases: int, timeout_seconds: float
) -> tuple[BackgroundProcess, LoadedRdb]:
    reason = ""
    for attempt in range(SERVER_START_ATTEMPTS):
        port = _free_port()
        log_path = work / f"server-{attempt}.log"
        command = Command(
            argv=(
                REDIS_SERVER,
                str(work / "throwaway.conf"),
                *("--port", str(port), "--bind", LOOPBACK, "--protected-mode", "yes"),
                *("--dir", str(work), "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"),
                *("--databases", str(databases), "--daemonize", "no", "--logfile", ""),
            ),
            timeout_seconds=timeout_seconds,
        )
        try:
            process = start_background(command, log_path)
        except ProcessFailed as error:
            raise StoreError(f"cannot start {REDIS_SERVER}: {error}") from None
        try:
            return process, _wait_until_loaded(process, port, password, databases, timeout_seconds, log_path)
        except _ServerExited as exited:
            reason = str(exited)
            # Another process took the free port between probe and start: try another one.
            if "Address already in use" not in log_path.read_text(encoding="utf-8", errors="replace"):
                break
    raise StoreError(f"{REDIS_SERVER} refused the RDB: {reason}")


class _ServerExited(Exception):
    """The throw-away server stopped before it finished loading."""


def _wait_until_loaded(
    process: BackgroundProcess, port: int, password: str, databases: int, timeout_seconds: float, log_path: Path
) -> LoadedRdb:
    """Return once INFO says loading:0; stops the server and raises when it exits, fails or misses the deadline."""
    deadline = time.monotonic() + timeout_seconds
    client = server_client(LOOPBACK, port, password, 0, CONNECT_TIMEOUT_SECONDS)
    try:
        while True:
            if not process.running():
                raise _ServerExited(_log_reason(log_path))
            try:
                info: dict[str, Any] = client.info()
                if int(info.get("loading", 1)) == 0:
                    return LoadedRdb(
                        port=port,
                        password=password,
                        databases=databases,
                        version=str(info.get("redis_version", "?")),
                        keys_loaded=int(info.get("rdb_last_load_keys_loaded", 0)),
                        keys_expired_at_load=int(info.get("rdb_last_load_keys_expired", 0)),
                    )
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # not listening yet, answering LOADING, or busy loading a large file
            if time.monotonic() > deadline:
                raise StoreError(f"{REDIS_SERVER} did not finish loading the RDB within {timeout_seconds:.0f}s")
            time.sleep(READY_POLL_SECONDS)
    except BaseException:
        process.stop(SERVER_STOP_GRACE_SECONDS)
        raise
    finally:
        client.close()


# RDB files ---------------------------------------------------------------------------------------------------------


def first_line_of(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def rdb_version(path: Path) -> int:
    """Return the RDB format version from the file's header. Raises StoreError when it is not an RDB file."""
    try:
        with path.open("rb") as file:
            header = file.read(RDB_HEADER_BYTES)
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror}") from None
    if len(header) < RDB_HEADER_BYTES or not header.startswith(RDB_MAGIC) or not header[5:].isdigit():
        raise StoreError(f"{path} is not an RDB file (header {header[:RDB_HEADER_BYTES]!r})")
    return int(header[5:])


def find_check_tool() -> str | None:
    """Return the path of redis-check-rdb, or None when it is not installed."""
    return shutil.which(REDIS_CHECK_RDB)


def check_rdb_file(path: Path, timeout_seconds: float) -> str:
    """Return what redis-check-rdb said about a good file. Raises StoreError with its finding otherwise."""
    tool = find_check_tool()
    if tool is None:
        return f"{REDIS_CHECK_RDB} not installed"
    try:
        completed = run(Command(argv=(tool, str(path)), timeout_seconds=timeout_seconds))
    except ProcessFailed as error:
        raise StoreError(f"{REDIS_CHECK_RDB} could not run: {error}") from None
    lines = (completed.stdout + "\n" + completed.stderr_tail).splitlines()
    if completed.succeeded:
        return f"{REDIS_CHECK_RDB}: RDB looks OK"
    if completed.timed_out:
        raise StoreError(f"{REDIS_CHECK_RDB} did not finish within {timeout_seconds:.0f}s")
    marker = "--- RDB ERROR DETECTED ---"
    finding = lines[lines.index(marker) + 1] if marker in lines[:-1] else last_meaningful_line("\n".join(lines))
    raise StoreError(f"{REDIS_CHECK_RDB} exited {completed.exit_code}: {finding.strip()}")
