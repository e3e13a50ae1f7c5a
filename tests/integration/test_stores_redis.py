"""stores/redis.py against the real Redis on 127.0.0.1:6379 and private redis-servers: RDB backup, a fingerprint
taken from the file, expiry between backup and verify, corruption, canary, restore targets, no stray servers.

The server on 6379 is shared: these tests claim one empty logical database (SET NX of a claim key), never FLUSH,
delete only their own keys, and assert on their own database (a fingerprint covers every database). The canary
lives in database 0 by contract, so its round trip runs on a private server instead of the shared one.
"""

from __future__ import annotations

import copy
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from replica.config.models import RedisStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.execute import BackgroundProcess, Command, run, start_background
from replica.stores import redis_fingerprint, redis_server
from replica.stores.base import Canary, Target
from replica.stores.redis import RedisStore
from replica.stores.redis_fingerprint import compare_fingerprints, encode_key, measure_rdb
from replica.stores.redis_server import loaded_rdb

HOST, PORT = "127.0.0.1", 6379
CANDIDATE_DATABASES = (13, 12, 14, 10, 9)  # not 11: the e2e tier uses it
CLAIM_KEY = "replica-it:claim"
PREFIX = "replica-it:"
BINARY_KEY = b"replica-it:\xff\xfe"
# The short-lived key outlives the server's diskless-sync delay (5 s by default, 0 for the suite: see
# tests/conftest.py) by this much, so that the RDB and the fingerprint (~0.3 s) hold it; it then expires before
# verification, which the tests wait for.
SHORT_TTL_AFTER_SYNC_DELAY_MS = 3000
DEFAULT_SYNC_DELAY_SECONDS = 5
LONG_TTL_MS = 600_000
SAMPLE_KEYS = 50
# The claim (TTL), 5 strings, a list, a set, a sorted set, a hash and a stream.
KEYS_WRITTEN = 10
TYPES_WRITTEN = {"hash": 1, "list": 1, "set": 1, "stream": 1, "string": 5, "zset": 1}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def processes_mentioning(text: str) -> list[str]:
    """Return `pid cmdline` of every process whose command line contains `text`."""
    completed = run(Command(argv=("pgrep", "-a", "-f", text), timeout_seconds=10))
    return [line for line in completed.stdout.splitlines() if "pgrep" not in line]


def store_for(port: int = PORT, password_env: str | None = None) -> RedisStore:
    config = RedisStoreConfig(
        kind="redis", host=HOST, port=port, password_env=password_env, dump_timeout=timedelta(seconds=60)
    )
    return RedisStore(config, sample_keys=SAMPLE_KEYS)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def wait_past(milliseconds: int) -> None:
    """Sleep until the wall clock is past `milliseconds` (an absolute expiry)."""
    while now_ms() <= milliseconds + 20:
        time.sleep(0.05)


def take_backup(store: RedisStore, scratch: Path, output: Path) -> dict[str, Any]:
    """Run prepare_backup, store the producer's stream at `output` (what restic would store); return the
    fingerprint."""
    with store.prepare_backup(scratch, "cache") as prepared:
        assert prepared.source.producer is not None
        fingerprint = prepared.fingerprint()
        completed = run(prepared.source.producer, stdout_path=output)
        prepared.verify_producer(completed)
    assert completed.succeeded, completed.stderr_tail
    return fingerprint


def restore_into(store: RedisStore, target: Target, rdb: Path) -> None:
    """Bring `rdb` into `target` the way the restore method says (`restic dump` to a file, here `cat`)."""
    method = store.restore_method(target, "/cache.rdb")
    assert method.kind == "file"
    assert method.output_path is not None
    assert run(Command(argv=("cat", str(rdb))), stdout_path=method.output_path).succeeded


def only_database(fingerprint: dict[str, Any], index: int) -> dict[str, Any]:
    """Return the fingerprint restricted to one database (the others belong to other users of the server)."""
    return {**fingerprint, "databases": {str(index): fingerprint["databases"][str(index)]}}


def sync_delay_seconds(client: redis.Redis) -> int:
    """Return how long the server waits before it sends an RDB to `redis-cli --rdb`."""
    try:
        return int(client.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"])
    except (redis.ResponseError, KeyError):  # CONFIG refused: assume the default
        return DEFAULT_SYNC_DELAY_SECONDS


@dataclass(frozen=True)
class Backup:
    """The module's backup of the shared server: the stored RDB, its fingerprint and what the test wrote."""

    rdb: Path
    fingerprint: dict[str, Any]
    database: int
    long_expiry_ms: int
    short_expiry_ms: int
    scratch_left: list[str]
    stored_name: str
    producer: tuple[str, ...]


@pytest.fixture(scope="module", autouse=True)
def private_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Route the throw-away servers' directories here, and prove that none of them outlives the tests."""
    directory = tmp_path_factory.mktemp("throwaway")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(directory))
        yield directory
    assert processes_mentioning(str(directory)) == [], "a throw-away redis-server was left running"
    assert list(directory.glob("replica-redis-*")) == [], "a throw-away server directory was left behind"


@pytest.fixture(scope="module")
def database() -> Iterator[int]:
    """Claim an empty logical database of the shared server; delete only this module's keys afterwards."""
    token = secrets.token_hex(8)
    try:
        redis.Redis(host=HOST, port=PORT, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        pytest.fail(f"the integration tier needs Redis on {HOST}:{PORT}: {error}")
    for index in CANDIDATE_DATABASES:
        client = redis.Redis(host=HOST, port=PORT, db=index)
        if client.set(CLAIM_KEY, token, nx=True, ex=900):
            if client.dbsize() == 1:
                break
            client.delete(CLAIM_KEY)
        client.close()
    else:
        pytest.fail(f"no empty logical database among {CANDIDATE_DATABASES} on {HOST}:{PORT}")
    try:
        yield index
    finally:
        mine = [name for name in client.scan_iter(match=f"{PREFIX}*") if name != CLAIM_KEY.encode()]
        if mine:
            client.delete(*mine)
        if client.get(CLAIM_KEY) == token.encode():
            client.delete(CLAIM_KEY)
        client.close()


@pytest.fixture(scope="module")
def backup(database: int, tmp_path_factory: pytest.TempPathFactory) -> Backup:
    """Write every type, a binary key name and two keys with a TTL; back the shared server up once."""
    client = redis.Redis(host=HOST, port=PORT, db=database)
    client.set(f"{PREFIX}string", "héllo ✓")
    client.set(BINARY_KEY, b"\x00\xff raw")
    client.rpush(f"{PREFIX}list", "a", "b", "c")
    client.sadd(f"{PREFIX}set", "x", "y", "z")
    client.zadd(f"{PREFIX}zset", {"a": 1.5, "b": -2, "c": float("inf")})
    client.hset(f"{PREFIX}hash", mapping={"f1": "v1", "f2": "v2"})
    client.xadd(f"{PREFIX}stream", {"event": "created"})
    client.xadd(f"{PREFIX}stream", {"event": "paid", "amount": "12.50"})
    client.xgroup_create(f"{PREFIX}stream", "workers", id="0")
    client.set(f"{PREFIX}ttl-long", "stays", px=LONG_TTL_MS)
    client.set(f"{PREFIX}ttl-short", "goes", px=sync_delay_seconds(client) * 1000 + SHORT_TTL_AFTER_SYNC_DELAY_MS)
    long_expiry, short_expiry = client.pexpiretime(f"{PREFIX}ttl-long"), client.pexpiretime(f"{PREFIX}ttl-short")
    client.close()
    directory = tmp_path_factory.mktemp("backup")
    scratch = directory / "scratch"
    rdb = directory / "backup-a.rdb"
    with store_for().prepare_backup(scratch, "cache") as prepared:
        assert prepared.source.producer is not None
        fingerprint = prepared.fingerprint()
        completed = run(prepared.source.producer, stdout_path=rdb)
        prepared.verify_producer(completed)
    assert completed.succeeded, completed.stderr_tail
    return Backup(
        rdb=rdb,
        fingerprint=fingerprint,
        database=database,
        long_expiry_ms=int(long_expiry),
        short_expiry_ms=int(short_expiry),
        scratch_left=[path.name for path in scratch.iterdir()],
        stored_name=prepared.source.stored_name,
        producer=prepared.source.producer.argv,
    )


def test_backup_stores_an_rdb_fingerprinted_from_the_file(backup: Backup) -> None:
    assert backup.stored_name == "/cache.rdb"
    assert backup.producer[0] == "cat"
    assert backup.producer[1].endswith("/cache.rdb")
    assert backup.rdb.read_bytes()[:5] == b"REDIS"
    assert backup.scratch_left == [], "the RDB copy must be removed when the context closes"

    mine = backup.fingerprint["databases"][str(backup.database)]
    assert mine["keys"] == KEYS_WRITTEN
    assert (mine["persistent"], mine["volatile"], mine["stride"]) == (7, 3, 1)
    assert mine["types"] == TYPES_WRITTEN
    assert mine["expiries"][f"{PREFIX}ttl-long"] == [backup.long_expiry_ms, "string"]
    assert mine["expiries"][f"{PREFIX}ttl-short"] == [backup.short_expiry_ms, "string"]
    assert encode_key(BINARY_KEY) == "hex:" + BINARY_KEY.hex()
    assert set(mine["sample"]) == {
        CLAIM_KEY,
        encode_key(BINARY_KEY),
        *(f"{PREFIX}{name}" for name in ("string", "list", "set", "zset", "hash", "stream", "ttl-long", "ttl-short")),
    }
    assert mine["sample"][f"{PREFIX}ttl-long"]["expires_at_ms"] == backup.long_expiry_ms
    assert backup.fingerprint["format"] == "redis-rdb-1"
    assert backup.fingerprint["as_of_ms"] < backup.short_expiry_ms


def test_restored_rdb_matches_its_fingerprint(backup: Backup, tmp_path: Path) -> None:
    store = store_for()

    with store.scratch_target(tmp_path / "scratch", "it") as target:
        restore_into(store, target, backup.rdb)
        location = store.restored_location(target, backup.stored_name)
        checks = store.check_restored(location, backup.fingerprint, VerificationConfig())
        assert target.path is not None
        scratch_directory = target.path.parent

    assert [(check.name, check.passed) for check in checks] == [("integrity", True), ("fingerprint", True)]
    assert "redis-check-rdb: RDB looks OK" in checks[0].detail
    assert "sampled values match" in checks[1].detail
    assert not scratch_directory.exists()


def test_a_key_expiring_between_backup_and_verify_does_not_fail(backup: Backup) -> None:
    wait_past(backup.short_expiry_ms)

    checks = store_for().check_restored(Target("restored", path=backup.rdb), backup.fingerprint, VerificationConfig())

    assert [(check.name, check.passed) for check in checks] == [("integrity", True), ("fingerprint", True)]
    assert "already expired, dropped" in checks[0].detail
    assert "expired since the backup and were left out" in checks[1].detail


def test_an_altered_fingerprint_fails_with_figures(backup: Backup) -> None:
    wait_past(backup.short_expiry_ms)
    index = backup.database
    altered = copy.deepcopy(backup.fingerprint)
    mine = altered["databases"][str(index)]
    mine["sample"][f"{PREFIX}hash"]["digest"] = "0" * 32
    mine["expiries"][f"{PREFIX}ttl-long"][0] += 1000
    mine["persistent"] += 1
    mine["types"]["set"] += 1

    checks = store_for().check_restored(Target("restored", path=backup.rdb), altered, VerificationConfig())

    assert checks[0].passed
    assert not checks[1].passed
    detail = checks[1].detail
    # 10 keys written; the short-lived one expired since and is left out of the expectation.
    assert f"keys in db {index}: expected 10, restored 9" in detail
    assert f"set keys in db {index}: expected 2, restored 1" in detail
    assert (
        f"expiry of 1 of 2 keys in db {index} differs, e.g. key '{PREFIX}ttl-long': expected "
        f"{datetime.fromtimestamp((backup.long_expiry_ms + 1000) / 1000, UTC).isoformat(timespec='milliseconds')} "
        f"({backup.long_expiry_ms + 1000} ms), restored "
    ) in detail
    assert f"sampled values in db {index}: 1 of 9 differ, e.g. key '{PREFIX}hash' (hash, restored hash)" in detail


def test_a_second_backup_after_changes_fails_the_first_fingerprint(backup: Backup, tmp_path: Path) -> None:
    index = backup.database
    client = redis.Redis(host=HOST, port=PORT, db=index)
    client.hset(f"{PREFIX}hash", "f1", "changed")
    client.delete(f"{PREFIX}list")
    client.pexpireat(f"{PREFIX}ttl-long", backup.long_expiry_ms + 5000)
    client.close()
    store = store_for()
    later = tmp_path / "backup-b.rdb"
    take_backup(store, tmp_path / "scratch", later)
    wait_past(backup.short_expiry_ms)

    checks = store.check_restored(Target("restored", path=later), backup.fingerprint, VerificationConfig())
    with loaded_rdb(later, timeout_seconds=30) as loaded:
        found = measure_rdb(loaded, sample_keys=0, guide=backup.fingerprint)
    mine = compare_fingerprints(
        only_database(backup.fingerprint, index), only_database(found, index), VerificationConfig()
    )

    assert checks[0].passed
    assert not checks[1].passed
    assert not mine.passed
    assert mine.detail.startswith(f"keys in db {index}: expected 9, restored 8; ")
    assert f"list keys in db {index}: expected 1, restored 0" in mine.detail
    assert f"expiry of 1 of 2 keys in db {index} differs, e.g. key '{PREFIX}ttl-long'" in mine.detail
    assert f"({backup.long_expiry_ms + 5000} ms)" in mine.detail
    assert f"sampled keys in db {index}: 1 of 9 missing, e.g. '{PREFIX}list'" in mine.detail
    assert f"sampled values in db {index}: 1 of 9 differ, e.g. key '{PREFIX}hash'" in mine.detail


@pytest.mark.parametrize("check_tool", [True, False], ids=["redis-check-rdb", "redis-server-only"])
def test_a_corrupt_rdb_fails_integrity_and_leaves_no_server(
    backup: Backup, private_temp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check_tool: bool
) -> None:
    if not check_tool:
        monkeypatch.setattr(redis_server, "find_check_tool", lambda: None)
    damaged = tmp_path / "damaged.rdb"
    content = bytearray(backup.rdb.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 16] = b"\xa5" * 16
    damaged.write_bytes(bytes(content))

    checks = store_for().check_restored(Target("restored", path=damaged), backup.fingerprint, VerificationConfig())

    assert [(check.name, check.passed) for check in checks] == [("integrity", False), ("fingerprint", False)]
    assert checks[0].detail.startswith("restored RDB unusable: ")
    expected_reporter = "redis-check-rdb exited 1: " if check_tool else "redis-server refused the RDB: "
    assert expected_reporter in checks[0].detail
    assert checks[1].detail == "not compared: the RDB does not load"
    assert processes_mentioning(str(private_temp)) == []


def test_a_file_that_is_no_rdb_fails_integrity(backup: Backup, tmp_path: Path) -> None:
    store = store_for()
    empty = tmp_path / "empty.rdb"
    empty.write_bytes(b"")

    missing = store.check_restored(
        Target("restored", path=tmp_path / "none.rdb"), backup.fingerprint, VerificationConfig()
    )
    truncated = store.check_restored(Target("restored", path=empty), backup.fingerprint, VerificationConfig())

    assert not missing[0].passed and not missing[1].passed
    assert "cannot read" in missing[0].detail
    assert not truncated[0].passed
    assert "is not an RDB file" in truncated[0].detail


def test_unreachable_redis_raises_a_store_error_naming_it(tmp_path: Path) -> None:
    port = free_port()

    started = time.monotonic()
    with pytest.raises(StoreError) as info, store_for(port).prepare_backup(tmp_path / "scratch", "cache"):
        pytest.fail("the body must not run")
    elapsed = time.monotonic() - started

    assert elapsed < 15
    message = str(info.value)
    assert message.startswith(f"redis on {HOST}:{port}: cannot connect: ")
    assert "\n" not in message
    assert not (tmp_path / "scratch").exists() or list((tmp_path / "scratch").iterdir()) == []


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A redis-server of this test alone, with a password and no diskless-sync delay; yields (port, password)."""
    password = secrets.token_hex(12)
    directory = tmp_path / "private-server"
    directory.mkdir()
    config = directory / "redis.conf"
    config.write_text(f"requirepass {password}\n", encoding="utf-8")
    port = free_port()
    server: BackgroundProcess = start_background(
        Command(
            argv=(
                "redis-server",
                str(config),
                *("--port", str(port), "--bind", HOST, "--dir", str(directory), "--save", "", "--appendonly", "no"),
                *("--repl-diskless-sync-delay", "0", "--logfile", ""),
            )
        ),
        directory / "server.log",
    )
    client = redis.Redis(host=HOST, port=port, password=password, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.running() and time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)
        yield port, password
    finally:
        client.close()
        server.stop()
        assert processes_mentioning(str(directory)) == []


def test_canary_round_trip_through_an_rdb(
    private_server: tuple[int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, password = private_server
    monkeypatch.setenv("REPLICA_IT_REDIS_PASSWORD", password)
    store = store_for(port, password_env="REPLICA_IT_REDIS_PASSWORD")
    assert store.describe() == f"redis on {HOST}:{port}"
    before = tmp_path / "before.rdb"
    take_backup(store, tmp_path / "scratch", before)
    canary = Canary(run_id=42, written_at=datetime.now(UTC))

    store.write_canary(canary)
    after = tmp_path / "after.rdb"
    fingerprint = take_backup(store, tmp_path / "scratch", after)

    assert store.read_canary(Target("before", path=before)) is None
    assert store.read_canary(Target("after", path=after)) == canary
    assert store.read_canary(Target("nothing", path=tmp_path / "missing.rdb")) is None
    assert fingerprint["databases"]["0"]["types"] == {"string": 1}
    checks = store.check_restored(Target("after", path=after), fingerprint, VerificationConfig())
    assert all(check.passed for check in checks), checks


def test_a_wrong_password_is_a_store_error(
    private_server: tuple[int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = private_server
    monkeypatch.setenv("REPLICA_IT_REDIS_PASSWORD", "not-the-password")
    store = store_for(port, password_env="REPLICA_IT_REDIS_PASSWORD")

    with (
        pytest.raises(StoreError, match=rf"redis on {HOST}:{port}: cannot connect: "),
        store.prepare_backup(tmp_path / "scratch", "cache"),
    ):
        pytest.fail("the body must not run")
    with pytest.raises(StoreError, match="cannot write canary"):
        store.write_canary(Canary(1, datetime.now(UTC)))


def test_subset_and_expiry_histogram_of_large_databases(backup: Backup, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny limits stand in for a database of more than 100,000 keys and more than 10,000 keys with a TTL.
    monkeypatch.setattr(redis_fingerprint, "FULL_SCAN_KEY_LIMIT", 4)
    monkeypatch.setattr(redis_fingerprint, "EXACT_EXPIRY_KEY_LIMIT", 0)
    wait_past(backup.short_expiry_ms)
    with loaded_rdb(backup.rdb, timeout_seconds=30) as loaded:
        fingerprint = measure_rdb(loaded, sample_keys=SAMPLE_KEYS)
    mine = fingerprint["databases"][str(backup.database)]
    assert mine["stride"] == 4
    assert "expiries" not in mine
    assert "expiry_buckets" in mine
    assert mine["persistent"] == 7
    store = store_for()

    same = store.check_restored(Target("restored", path=backup.rdb), fingerprint, VerificationConfig())
    altered = copy.deepcopy(fingerprint)
    altered["databases"][str(backup.database)]["persistent"] += 1
    wrong = store.check_restored(Target("restored", path=backup.rdb), altered, VerificationConfig())

    assert all(check.passed for check in same), same
    assert "checked on a subset of their keys" in same[1].detail
    assert not wrong[1].passed
    assert f"keys without TTL in db {backup.database}: expected 8, restored 7" in wrong[1].detail


def test_expiry_histogram_comparison_allows_only_losses_in_the_current_bucket() -> None:
    verification = VerificationConfig()
    expected = {
        "format": "redis-rdb-1",
        "as_of_ms": 1_000,
        "databases": {
            "0": {
                "keys": 5,
                "persistent": 1,
                "volatile": 4,
                "stride": 1,
                "types": {"string": 5},
                "sample": {},
                "expiry_buckets": {"width_ms": 1000, "counts": [[1000, "string", 2], [5000, "string", 2]]},
            }
        },
    }

    def found(expiries: dict[str, list[Any]]) -> dict[str, Any]:
        volatile = len(expiries)
        return {
            "as_of_ms": 1500,
            "keys": 1 + volatile,
            "databases": {
                "0": {
                    "keys": 1 + volatile,
                    "persistent": 1,
                    "volatile": volatile,
                    "types": {"string": 1 + volatile},
                    "sample": {},
                    "expiries": expiries,
                }
            },
        }

    one_left = compare_fingerprints(
        expected, found({"a": [1800, "string"], "c": [5100, "string"], "d": [5900, "string"]}), verification
    )
    lost_later = compare_fingerprints(expected, found({"a": [1800, "string"], "c": [5100, "string"]}), verification)

    assert one_left.passed, one_left.detail
    assert not lost_later.passed
    assert "keys in db 0: expected 3 to 5, restored 3" not in lost_later.detail
    assert "expiry histogram of db 0: 1 buckets differ" in lost_later.detail


def test_named_target_refuses_the_live_rdb_and_directories(tmp_path: Path) -> None:
    store = store_for()
    client = redis.Redis(host=HOST, port=PORT)
    live = Path(str(client.config_get("dir")["dir"])) / str(client.config_get("dbfilename")["dbfilename"])
    client.close()

    with pytest.raises(UsageError, match="RDB file of the live redis on"):
        store.named_target(str(live))
    with pytest.raises(UsageError, match="is a directory"):
        store.named_target(str(tmp_path))
    other = store.named_target(str(tmp_path / "cache.rdb"))
    assert other.path == tmp_path / "cache.rdb"
    assert not store.target_has_data(other)
    (tmp_path / "cache.rdb").write_bytes(b"REDIS0010")
    assert store.target_has_data(other)


def test_staging_and_promote_keep_the_existing_file_aside(backup: Backup, tmp_path: Path) -> None:
    final_path = tmp_path / "restore" / "cache.rdb"
    final_path.parent.mkdir()
    final_path.write_bytes(b"previous content")
    store = store_for()
    final = store.named_target(str(final_path))

    with store.staging_target(final, "run-7") as staged:
        assert staged.path is not None
        assert staged.path.parent.parent == final_path.parent
        assert not staged.path.exists()
        restore_into(store, staged, backup.rdb)
        moved = store.promote(staged, final, ".replaced-20261126")

    aside = final_path.with_name("cache.rdb.replaced-20261126")
    assert moved == str(aside)
    assert aside.read_bytes() == b"previous content"
    assert final_path.read_bytes() == backup.rdb.read_bytes()
    assert sorted(path.name for path in final_path.parent.iterdir()) == ["cache.rdb", "cache.rdb.replaced-20261126"]


def test_staging_target_is_removed_when_not_promoted(tmp_path: Path) -> None:
    store = store_for()
    final = store.named_target(str(tmp_path / "cache.rdb"))

    with pytest.raises(RuntimeError), store.staging_target(final, "x") as staged:
        assert staged.path is not None
        staged.path.write_bytes(b"REDIS0010")
        raise RuntimeError("restore failed")

    assert list(tmp_path.iterdir()) == []


def test_no_redis_server_of_these_tests_is_left(private_temp: Path) -> None:
    leftovers = processes_mentioning(str(private_temp))

    assert leftovers == []
