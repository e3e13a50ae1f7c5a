"""The `redis` store: an RDB taken with `redis-cli --rdb`, fingerprinted by loading it into a throw-away server.

Backup: `redis-cli --rdb` asks the server for a replication sync, so the file is one consistent point in time of
every logical database (the server waits `repl-diskless-sync-delay`, 5 s by default, before it starts sending).
restic stores that very file. Its fingerprint is taken from the file, never from the live server: a private
`redis-server` (loopback, a random password in a 0600 config file, no persistence) loads it through a symlink in
its own temporary directory, so even an accidental save could not rewrite the file being checked.

Fingerprint, per logical database: key count (persistent and with a TTL), a histogram of key types, the absolute
expiry (PEXPIRETIME) of every key with a TTL, and digests of the logical values of a sample of keys (GET, LRANGE,
sorted SMEMBERS, ZRANGE WITHSCORES, sorted HGETALL, XRANGE plus stream and group ids), never of DUMP payloads,
whose encoding differs between Redis versions. The sample is the `sample_keys` keys with the smallest 64-bit
BLAKE2b hash of their name: deterministic, spread over the whole keyspace, and found by a streaming SCAN.

Expiry: keys expire between the backup and a verification, and redis-server drops expired keys when it loads an
RDB. A fingerprint therefore describes its RDB "as of" an instant after it was read, leaving out every key whose
expiry is at or before it. A check takes the restored copy's fingerprint at a later instant and first removes from
the expectation the keys that expired in between, so counts still compare exactly; absolute expiry times must
match to the millisecond (a restore keeps them).

Weaker checks, on purpose, to bound memory and fingerprint size:
- a database of more than FULL_SCAN_KEY_LIMIT keys is checked on a subset: the keys whose name hash is divisible
  by a power-of-two stride (recorded, so the restore is read on the same subset). Types, expiries and the sample
  cover that subset; the count of persistent keys stays exact; the count of keys with a TTL can only be checked
  as "no more than at backup time".
- more than EXACT_EXPIRY_KEY_LIMIT keys with a TTL in a (subset of a) database: only a histogram of their expiry
  times by type is recorded; the bucket holding the check's instant is then compared as "no more than".

Costs: the throw-away server needs about as much memory as the dataset, and sampled values are read whole.

Restore --to: the target is an RDB file. Loading it is the operator's step: stop Redis, put the file in place as
its `dir`/`dbfilename` (with append-only files off or removed, or Redis loads those instead), start Redis.
Not supported: TLS, ACL user names, RDBs that need modules (they do not load without the module) and RDB
versions newer than the local redis-server reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import redis

from replica.catalog.records import CheckOutcome
from replica.config.models import RedisStoreConfig, VerificationConfig
from replica.errors import ProcessFailed, StoreError, UsageError, last_meaningful_line
from replica.execute import Command, Completed, run
from replica.secrets import store_password
from replica.stores.base import (
    CANARY_NAME,
    BackupSource,
    Canary,
    Fingerprint,
    PreparedBackup,
    Target,
    source_error,
)
from replica.stores.paths import SingleFileStore, named_path, temporary_directory
from replica.stores.redis_fingerprint import as_text, compare_fingerprints, measure_rdb
from replica.stores.redis_server import (
    COMMAND_TIMEOUT_SECONDS,
    check_rdb_file,
    first_line_of,
    loaded_rdb,
    rdb_version,
    server_client,
)

PRODUCER_TIMEOUT_SECONDS = 24 * 3600.0
REDIS_CLI = "redis-cli"


class RedisStore(SingleFileStore):
    """One Redis server, every logical database in it."""

    kind = "redis"
    restored_file_name = "restored.rdb"
    file_description = "redis RDB file"

    def __init__(self, config: RedisStoreConfig, sample_keys: int = 32) -> None:
        self.config = config
        self.sample_keys = sample_keys

    def describe(self) -> str:
        return f"redis on {self.config.host}:{self.config.port}"

    # Connections -----------------------------------------------------------------------------------------------

    def _password(self) -> str | None:
        return store_password(self.config, self.describe())

    def _timeout(self) -> float:
        return timedelta.total_seconds(self.config.dump_timeout)

    def _live_client(self) -> redis.Redis:
        return server_client(self.config.host, self.config.port, self._password(), 0, COMMAND_TIMEOUT_SECONDS)

    def _configured_databases(self) -> int:
        """Return the live server's `databases` setting. Raises StoreError when the server cannot be reached."""
        try:
            with self._live_client() as client:
                client.ping()
                with contextlib.suppress(redis.ResponseError):  # CONFIG may be renamed away
                    return int(client.config_get("databases").get("databases", 16))
        except redis.RedisError as error:
            raise source_error(f"{self.describe()}: cannot connect: {first_line_of(error)}", str(error)) from None
        return 16

    # Backup ----------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def prepare_backup(self, scratch: Path, job_name: str) -> Iterator[PreparedBackup]:
        databases = self._configured_databases()
        with temporary_directory(scratch, f"backup-{job_name}-{os.getpid()}") as directory:
            rdb_path = directory / f"{job_name}.rdb"
            self._take_rdb(rdb_path)
            try:
                with loaded_rdb(rdb_path, timeout_seconds=self._timeout(), databases=databases) as loaded:
                    fingerprint = measure_rdb(loaded, sample_keys=self.sample_keys, databases_configured=databases)
            except StoreError as error:
                raise StoreError(f"the RDB taken from {self.describe()} cannot be read: {error}") from None
            except redis.RedisError as error:
                raise StoreError(
                    f"the RDB taken from {self.describe()} cannot be read: {first_line_of(error)}"
                ) from None
            yield PreparedBackup(
                source=BackupSource(
                    stored_name=f"/{job_name}.rdb",
                    producer=Command(
                        argv=("cat", str(rdb_path)),
                        timeout_seconds=PRODUCER_TIMEOUT_SECONDS,
                        stall_seconds=self.stall_seconds,
                    ),
                ),
                # Taken from the file before restic starts: a file that does not load never becomes a snapshot.
                fingerprint=lambda: fingerprint,
                verify_producer=self._verify_copy,
            )

    def _take_rdb(self, rdb_path: Path) -> None:
        password = self._password()
        command = Command(
            argv=(REDIS_CLI, "-h", self.config.host, "-p", str(self.config.port), "--rdb", str(rdb_path)),
            environment={"REDISCLI_AUTH": password} if password else {},
            timeout_seconds=self._timeout(),
            # While the server forks and saves, it sends the waiting replica a newline a second: that is progress.
            stall_seconds=self.stall_seconds,
        )
        try:
            completed = run(command)
        except ProcessFailed as error:
            raise StoreError(f"{self.describe()}: cannot take an RDB: {error}") from None
        if not completed.succeeded:
            reason = "failed"
            if completed.timed_out:
                reason = (
                    completed.stop_reason
                    if completed.stalled_seconds
                    else f"did not finish within {self._timeout():.0f}s"
                )
            detail = last_meaningful_line(completed.stderr_tail) or last_meaningful_line(completed.stdout)
            raise source_error(f"{self.describe()}: redis-cli --rdb {reason}: {detail}")
        if not rdb_path.is_file() or rdb_path.stat().st_size == 0:
            raise StoreError(f"{self.describe()}: redis-cli --rdb wrote no data")

    def _verify_copy(self, completed: Completed) -> None:
        if not completed.succeeded:
            raise StoreError(
                f"streaming the RDB of {self.describe()} failed: {last_meaningful_line(completed.stderr_tail)}"
            )

    # Targets ---------------------------------------------------------------------------------------------------

    def named_target(self, to: str) -> Target:
        """Return an RDB file target; refuses a directory and, when the server tells it, its own RDB file."""
        path = named_path(to, resolve=False)
        if path.is_dir():
            raise UsageError(f"restore target {path} is a directory; name an RDB file")
        live = self._live_rdb_path()
        if live is not None and path.resolve() == live.resolve():
            raise UsageError(
                f"restore target {path} is the RDB file of the live {self.describe()}; choose another path "
                "(stop Redis and put the restored file in place yourself)"
            )
        return Target(description=f"redis RDB file {path}", path=path)

    def _live_rdb_path(self) -> Path | None:
        """Return `dir`/`dbfilename` of the live server, or None when it cannot tell (down, CONFIG disabled)."""
        try:
            with self._live_client() as client:
                directory = client.config_get("dir").get("dir")
                filename = client.config_get("dbfilename").get("dbfilename")
        except redis.RedisError:
            return None
        return Path(as_text(directory)) / as_text(filename) if directory and filename else None

    # Checks ----------------------------------------------------------------------------------------------------

    def check_restored(
        self, target: Target, expected: Fingerprint, verification: VerificationConfig
    ) -> list[CheckOutcome]:
        assert target.path is not None
        started = time.monotonic()
        databases = int(expected.get("databases_configured", 16))
        try:
            version = rdb_version(target.path)
            size = target.path.stat().st_size
            checked = check_rdb_file(target.path, self._timeout())
            with loaded_rdb(target.path, timeout_seconds=self._timeout(), databases=databases) as loaded:
                integrity = CheckOutcome(
                    "integrity",
                    True,
                    True,
                    f"RDB version {version}, {size} bytes; {checked}; redis-server {loaded.version} loaded "
                    f"{loaded.keys_loaded} keys ({loaded.keys_expired_at_load} already expired, dropped)",
                    time.monotonic() - started,
                )
                found = measure_rdb(loaded, sample_keys=0, guide=expected, databases_configured=databases)
        except (StoreError, redis.RedisError) as error:
            return [
                CheckOutcome("integrity", False, True, f"restored RDB unusable: {first_line_of(error)}"),
                CheckOutcome("fingerprint", False, True, "not compared: the RDB does not load"),
            ]
        return [integrity, compare_fingerprints(expected, found, verification)]

    def restored_values(self, location: Target, kind: str, query: str) -> set[str]:
        """Return the names of the keys matching the pattern `query` in every logical database of the restored
        RDB, read from a private redis-server on a free loopback port (stopped before returning)."""
        if kind != "keys":
            return super().restored_values(location, kind, query)
        assert location.path is not None
        names: set[str] = set()
        try:
            with loaded_rdb(location.path, timeout_seconds=self._timeout()) as loaded:
                for database in loaded.keyspace():
                    with loaded.client(database) as client:
                        names.update(as_text(name) for name in client.scan_iter(match=query, count=1000))
        except (StoreError, redis.RedisError) as error:
            raise StoreError(
                f"restored RDB {location.path}: cannot read keys '{query}': {first_line_of(error)}"
            ) from None
        return names

    # Canary ----------------------------------------------------------------------------------------------------

    def write_canary(self, canary: Canary) -> None:
        """SET `_replica_canary` in database 0. Durable in the sense that matters: the RDB taken afterwards
        (`redis-cli --rdb` starts after SET returned) contains it."""
        try:
            with self._live_client() as client:
                client.set(CANARY_NAME, json.dumps(canary.as_document()))
        except redis.RedisError as error:
            raise source_error(f"{self.describe()}: cannot write canary: {first_line_of(error)}", str(error)) from None

    def read_canary(self, location: Target) -> Canary | None:
        assert location.path is not None
        try:
            with (
                loaded_rdb(location.path, timeout_seconds=self._timeout()) as loaded,
                loaded.client(0) as client,
            ):
                value = client.get(CANARY_NAME)
            return Canary.from_document(json.loads(value)) if value else None
        except (StoreError, redis.RedisError, ValueError, KeyError, TypeError):
            return None
