"""Fingerprints of a loaded RDB and their comparison, for the redis store (see `replica.stores.redis`)."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from replica.catalog.records import CheckOutcome
from replica.config.models import VerificationConfig
from replica.stores.base import (
    Fingerprint,
)
from replica.stores.redis_server import LoadedRdb

FORMAT = "redis-rdb-1"
FULL_SCAN_KEY_LIMIT = 100_000
EXACT_EXPIRY_KEY_LIMIT = 10_000
SCAN_BATCH_KEYS = 1000
EXPIRY_BUCKET_WIDTHS_MS = (1_000, 60_000, 3_600_000, 86_400_000, 7 * 86_400_000)
EXPIRY_BUCKETS_MAX = 2048
MAX_LISTED_PROBLEMS = 5
HEX_PREFIX = "hex:"


# Key names and values -----------------------------------------------------------------------------------------


def encode_key(name: bytes) -> str:
    """Return a key name as JSON text: the UTF-8 text itself, or `hex:` and its bytes in hex (reversible)."""
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return HEX_PREFIX + name.hex()
    return HEX_PREFIX + name.hex() if text.startswith(HEX_PREFIX) else text


def decode_key(text: str) -> bytes:
    """Return the key name that `encode_key` turned into `text`."""
    return bytes.fromhex(text[len(HEX_PREFIX) :]) if text.startswith(HEX_PREFIX) else text.encode("utf-8")


def key_hash(name: bytes) -> int:
    """Return the 64-bit hash that picks the sample and the subset (stable across runs and machines)."""
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big")


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def value_digest(client: redis.Redis, name: bytes, kind: str) -> str:
    """Return a digest of the logical value of key `name` of type `kind` (module types: of the type alone)."""
    parts: list[bytes] = []
    if kind == "string":
        parts = [_as_bytes(client.get(name) or b"")]
    elif kind == "list":
        parts = [_as_bytes(item) for item in client.lrange(name, 0, -1)]
    elif kind == "set":
        parts = sorted(_as_bytes(member) for member in client.smembers(name))
    elif kind == "zset":
        # ZRANGE order (score, then member) is part of the value; a score is canonicalised through float.
        pairs: Any = client.zrange(name, 0, -1, withscores=True)
        for member, score in pairs:
            parts += [_as_bytes(member), repr(float(score)).encode()]
    elif kind == "hash":
        for field_name, value in sorted((_as_bytes(k), _as_bytes(v)) for k, v in client.hgetall(name).items()):
            parts += [field_name, value]
    elif kind == "stream":
        entries: Any = client.xrange(name, "-", "+")
        for entry_id, fields in entries:
            parts += [_as_bytes(entry_id), str(len(fields)).encode()]
            for field_name, value in fields.items():
                parts += [_as_bytes(field_name), _as_bytes(value)]
        parts.append(_as_bytes(client.xinfo_stream(name)["last-generated-id"]))
        for group in sorted(client.xinfo_groups(name), key=lambda group: _as_bytes(group["name"])):
            parts += [_as_bytes(group["name"]), _as_bytes(group["last-delivered-id"]), str(group["pending"]).encode()]
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


# Fingerprints ----------------------------------------------------------------------------------------------------


@dataclass
class _DatabaseScan:
    """One logical database as read from a loaded RDB (expiries of the subset's keys with a TTL only)."""

    stride: int
    persistent: int = 0
    volatile: int = 0
    types: Counter[str] = field(default_factory=Counter)
    expiries: dict[bytes, tuple[int, str]] = field(default_factory=dict)
    sample_names: list[bytes] = field(default_factory=list)
    sample: dict[bytes, dict[str, Any]] = field(default_factory=dict)


def stride_for(keys: int) -> int:
    """Return the power-of-two stride that keeps the scanned subset of a database at most FULL_SCAN_KEY_LIMIT."""
    stride = 1
    while keys > FULL_SCAN_KEY_LIMIT * stride:
        stride *= 2
    return stride


def as_text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _scan_database(client: redis.Redis, stride: int, sample_keys: int) -> _DatabaseScan:
    """SCAN every key once; keep types and expiries of the subset, and the `sample_keys` smallest name hashes."""
    scan = _DatabaseScan(stride=stride)
    seen: set[bytes] = set()  # SCAN may return a key twice
    smallest: list[tuple[int, bytes]] = []  # max-heap by negated hash, of at most sample_keys entries
    cursor = 0
    while True:
        reply: Any = client.scan(cursor=cursor, count=SCAN_BATCH_KEYS)
        cursor, names = int(reply[0]), [_as_bytes(name) for name in reply[1]]
        fresh: list[tuple[int, bytes]] = []
        for name in names:
            hashed = key_hash(name)
            if hashed % stride == 0 and name not in seen:
                seen.add(name)
                fresh.append((hashed, name))
        if fresh:
            pipeline = client.pipeline(transaction=False)
            for _, name in fresh:
                pipeline.type(name)
                _pexpiretime(pipeline, name)
            replies = pipeline.execute()
            for (hashed, name), kind_reply, expires_at in zip(fresh, replies[0::2], replies[1::2], strict=True):
                kind = as_text(kind_reply)
                if kind == "none" or expires_at == -2:
                    continue  # expired while scanning: left out, as its expiry is before the fingerprint's instant
                scan.types[kind] += 1
                if expires_at == -1:
                    scan.persistent += 1
                else:
                    scan.expiries[name] = (int(expires_at), kind)
                if sample_keys > 0:
                    heapq.heappush(smallest, (-hashed, name))
                    if len(smallest) > sample_keys:
                        heapq.heappop(smallest)
        if cursor == 0:
            break
    scan.volatile = len(scan.expiries)
    scan.sample_names = [name for _, name in sorted(smallest, reverse=True)]
    return scan


def _pexpiretime(commands: Any, name: bytes) -> Any:
    """Queue or run PEXPIRETIME (redis-py's stubs accept only str names; key names are bytes here)."""
    return commands.pexpiretime(name)


def _read_sampled(client: redis.Redis, name: bytes) -> dict[str, Any] | None:
    kind = as_text(client.type(name))
    expires_at = int(_pexpiretime(client, name))
    if kind == "none" or expires_at == -2:
        return None
    return {
        "type": kind,
        "digest": value_digest(client, name, kind),
        "expires_at_ms": None if expires_at == -1 else expires_at,
    }


def measure_rdb(
    loaded: LoadedRdb, *, sample_keys: int, guide: Fingerprint | None = None, databases_configured: int = 16
) -> Fingerprint:
    """Return the fingerprint of the RDB a throw-away server loaded (see the module docstring).

    With `guide` (the backup's fingerprint) the same subsets are scanned, the guide's sampled keys are read, the
    instant is no earlier than the guide's, and every expiry is recorded exactly: the result is what
    `compare_fingerprints` compares the guide with.
    """
    guide_databases: dict[str, Any] = dict((guide or {}).get("databases", {}))
    keyspace = loaded.keyspace()
    scans: dict[int, _DatabaseScan] = {}
    for index in sorted(set(keyspace) | {int(name) for name in guide_databases}):
        hints: dict[str, Any] = guide_databases.get(str(index), {})
        keys, volatile = keyspace.get(index, (0, 0))
        stride = int(hints.get("stride", 0)) or stride_for(keys)
        with loaded.client(index) as client:
            scan = _scan_database(client, stride, 0 if guide is not None else sample_keys)
            if guide is not None:
                scan.sample_names = [decode_key(name) for name in hints.get("sample", {})]
            for name in scan.sample_names:
                reading = _read_sampled(client, name)
                if reading is not None:
                    scan.sample[name] = reading
        if stride > 1:
            # Outside the subset only INFO's counters are known: persistent keys exactly, keys with a TTL roughly.
            scan.persistent, scan.volatile = keys - volatile, volatile
        scans[index] = scan
    as_of = max(loaded.time_ms(), int((guide or {}).get("as_of_ms", 0)))
    exact_limit = None if guide is not None else EXACT_EXPIRY_KEY_LIMIT
    documents = {str(index): _database_document(scan, as_of, exact_limit) for index, scan in scans.items()}
    return {
        "format": FORMAT,
        "as_of_ms": as_of,
        "databases_configured": databases_configured,
        "keys": sum(int(document["keys"]) for document in documents.values()),
        "databases": documents,
    }


def _database_document(scan: _DatabaseScan, as_of: int, exact_limit: int | None) -> dict[str, Any]:
    """Return one database's fingerprint as of `as_of`: keys that expired by then are left out everywhere."""
    expiries = {name: entry for name, entry in scan.expiries.items() if entry[0] > as_of}
    gone = Counter(kind for name, (at, kind) in scan.expiries.items() if at <= as_of)
    volatile = len(expiries) if scan.stride == 1 else scan.volatile
    document: dict[str, Any] = {
        "keys": scan.persistent + volatile,
        "persistent": scan.persistent,
        "volatile": volatile,
        "stride": scan.stride,
        "types": dict(sorted((scan.types - gone).items())),
        "sample": {
            encode_key(name): reading
            for name, reading in sorted(scan.sample.items())
            if reading["expires_at_ms"] is None or reading["expires_at_ms"] > as_of
        },
    }
    if exact_limit is None or len(expiries) <= exact_limit:
        document["expiries"] = {encode_key(name): [at, kind] for name, (at, kind) in sorted(expiries.items())}
    else:
        document["expiry_buckets"] = _expiry_buckets(expiries)
    return document


def _expiry_buckets(expiries: dict[bytes, tuple[int, str]], width_ms: int | None = None) -> dict[str, Any]:
    """Return {width_ms, counts: [[bucket start, type, keys], ...]}, the finest width of at most
    EXPIRY_BUCKETS_MAX buckets unless `width_ms` is given."""
    if width_ms is None:
        width_ms = EXPIRY_BUCKET_WIDTHS_MS[-1]
        for width in EXPIRY_BUCKET_WIDTHS_MS:
            if len({at // width for at, _ in expiries.values()}) <= EXPIRY_BUCKETS_MAX:
                width_ms = width
                break
    counts = Counter((at // width_ms * width_ms, kind) for at, kind in expiries.values())
    return {"width_ms": width_ms, "counts": [[start, kind, number] for (start, kind), number in sorted(counts.items())]}


def _format_ms(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass
class _Expected:
    """One database's expectation at the check's instant: exact values or (low, high) ranges."""

    keys: tuple[int, int]
    types: dict[str, tuple[int, int]]
    expired: int


def _expect_database(expected: dict[str, Any], cutoff: int) -> _Expected:
    """Remove from a backup-time database the keys with a TTL that expired by `cutoff`."""
    gone: Counter[str] = Counter()
    uncertain: Counter[str] = Counter()
    if "expiries" in expected:
        for at, kind in expected["expiries"].values():
            if int(at) <= cutoff:
                gone[str(kind)] += 1
    else:
        buckets = expected.get("expiry_buckets", {"width_ms": 1, "counts": []})
        width = int(buckets["width_ms"])
        for start, kind, number in buckets["counts"]:
            if int(start) + width - 1 <= cutoff:
                gone[str(kind)] += int(number)
            elif int(start) <= cutoff:
                uncertain[str(kind)] += int(number)
    if int(expected.get("stride", 1)) == 1:
        volatile_high = int(expected.get("volatile", 0)) - sum(gone.values())
        volatile_low = volatile_high - sum(uncertain.values())
    else:
        # INFO's counter (all that is known outside the subset) still counts expired keys not yet reclaimed.
        volatile_low, volatile_high = 0, int(expected.get("volatile", 0))
    persistent = int(expected.get("persistent", 0))
    types = {
        kind: (int(count) - gone[kind] - uncertain[kind], int(count) - gone[kind])
        for kind, count in expected.get("types", {}).items()
    }
    return _Expected((persistent + volatile_low, persistent + volatile_high), types, sum(gone.values()))


def _outside(value: int, expected: tuple[int, int], tolerance_percent: float) -> bool:
    allowed = expected[1] * tolerance_percent / 100
    return not expected[0] - allowed <= value <= expected[1] + allowed


def _show_range(expected: tuple[int, int]) -> str:
    return str(expected[0]) if expected[0] == expected[1] else f"{expected[0]} to {expected[1]}"


def _compare_database(
    index: str, expected: dict[str, Any], found: dict[str, Any], cutoff: int, tolerance_percent: float
) -> tuple[list[str], int]:
    """Return the problems of one database and how many keys with a TTL expired since the backup."""
    want = _expect_database(expected, cutoff)
    stride = int(expected.get("stride", 1))
    where = f"db {index}" if stride == 1 else f"db {index} (subset 1/{stride})"
    problems = []
    found_keys = int(found.get("keys", 0))
    if _outside(found_keys, want.keys, tolerance_percent):
        problems.append(f"keys in db {index}: expected {_show_range(want.keys)}, restored {found_keys}")
    persistent = int(expected.get("persistent", 0))
    # Exactly known keys: the one exact count of a subset; else implied by the key count and exact expiries.
    if (stride > 1 or "expiries" not in expected) and _outside(
        int(found.get("persistent", 0)), (persistent, persistent), tolerance_percent
    ):
        problems.append(
            f"keys without TTL in db {index}: expected {expected.get('persistent', 0)}, "
            f"restored {found.get('persistent', 0)}"
        )
    found_types: dict[str, int] = found.get("types", {})
    for kind in sorted(set(want.types) | set(found_types)):
        count = int(found_types.get(kind, 0))
        if _outside(count, want.types.get(kind, (0, 0)), tolerance_percent):
            problems.append(
                f"{kind} keys in {where}: expected {_show_range(want.types.get(kind, (0, 0)))}, restored {count}"
            )
    problems += _compare_expiries(where, expected, found.get("expiries", {}), cutoff)
    problems += _compare_sample(where, expected.get("sample", {}), found.get("sample", {}), cutoff)
    return problems, want.expired


def _compare_expiries(where: str, expected: dict[str, Any], found: dict[str, list[Any]], cutoff: int) -> list[str]:
    if "expiries" not in expected:
        buckets = expected.get("expiry_buckets", {"width_ms": 1, "counts": []})
        width = int(buckets["width_ms"])
        want = {(int(start), str(kind)): int(number) for start, kind, number in buckets["counts"]}
        restored = _expiry_buckets(
            {decode_key(name): (int(at), str(kind)) for name, (at, kind) in found.items()}, width
        )
        have = {(int(start), str(kind)): int(number) for start, kind, number in restored["counts"]}
        wrong = []
        for start, kind in sorted(set(want) | set(have)):
            wanted, got = want.get((start, kind), 0), have.get((start, kind), 0)
            if start + width - 1 <= cutoff:
                continue  # expired before the check: gone from both
            # The bucket holding the cutoff may have lost some keys since the backup, never gained any.
            if got > wanted if start <= cutoff else got != wanted:
                wrong.append((start, kind))
        if not wrong:
            return []
        start, kind = wrong[0]
        return [
            f"expiry histogram of {where}: {len(wrong)} buckets differ, e.g. {kind} keys expiring from "
            f"{_format_ms(start)}: expected {want.get((start, kind), 0)}, restored {have.get((start, kind), 0)}"
        ]
    kept = {name: int(at) for name, (at, _) in expected["expiries"].items() if int(at) > cutoff}
    restored = {name: int(at) for name, (at, _) in found.items()}
    differing = sorted(name for name in kept if name in restored and restored[name] != kept[name])
    missing = sorted(name for name in kept if name not in restored)
    extra = sorted(name for name in restored if name not in kept)
    problems = []
    if differing:
        name = differing[0]
        problems.append(
            f"expiry of {len(differing)} of {len(kept)} keys in {where} differs, e.g. key {_show(name)}: expected "
            f"{_format_ms(kept[name])} ({kept[name]} ms), restored {_format_ms(restored[name])} ({restored[name]} ms)"
        )
    if missing:
        problems.append(
            f"keys with a TTL in {where}: {len(missing)} of {len(kept)} lost their TTL or are missing, "
            f"e.g. {_show(missing[0])}"
        )
    if extra:
        problems.append(f"keys with a TTL in {where}: {len(extra)} not in the backup, e.g. {_show(extra[0])}")
    return problems


def _compare_sample(
    where: str, expected: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]], cutoff: int
) -> list[str]:
    kept = {
        name: reading
        for name, reading in expected.items()
        if reading.get("expires_at_ms") is None or int(reading["expires_at_ms"]) > cutoff
    }
    missing = sorted(name for name in kept if name not in found)
    differing = sorted(
        name
        for name in kept
        if name in found
        and (found[name].get("type"), found[name].get("digest")) != (kept[name].get("type"), kept[name].get("digest"))
    )
    problems = []
    if missing:
        problems.append(f"sampled keys in {where}: {len(missing)} of {len(kept)} missing, e.g. {_show(missing[0])}")
    if differing:
        name = differing[0]
        problems.append(
            f"sampled values in {where}: {len(differing)} of {len(kept)} differ, e.g. key {_show(name)} "
            f"({kept[name].get('type')}, restored {found[name].get('type')})"
        )
    return problems


def compare_fingerprints(expected: Fingerprint, found: Fingerprint, verification: VerificationConfig) -> CheckOutcome:
    """Return the `fingerprint` check of a restored RDB (`found`, from `measure_rdb` guided by `expected`).

    The detail carries the figures: "keys in db 0: expected 1200, restored 1199". The policy's
    `row_count_tolerance_percent` applies to key counts; expiry times and sampled values always match exactly.
    """
    if expected.get("format") != FORMAT:
        return CheckOutcome(
            "fingerprint", False, True, f"the backup's fingerprint is not a Redis RDB fingerprint ({FORMAT})"
        )
    cutoff = int(found["as_of_ms"])
    expected_databases: dict[str, Any] = expected.get("databases", {})
    found_databases: dict[str, Any] = found.get("databases", {})
    problems: list[str] = []
    expired = 0
    for index in sorted(set(expected_databases) | set(found_databases), key=int):
        database_problems, database_expired = _compare_database(
            index,
            expected_databases.get(index, {}),
            found_databases.get(index, {}),
            cutoff,
            verification.row_count_tolerance_percent,
        )
        problems += database_problems
        expired += database_expired
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        return CheckOutcome("fingerprint", False, True, shown + more)
    expiries = sum(len(database.get("expiries", {})) for database in found_databases.values())
    sampled = sum(len(database.get("sample", {})) for database in found_databases.values())
    used = sum(1 for database in found_databases.values() if int(database.get("keys", 0)) > 0)
    detail = (
        f"{used} databases, {found.get('keys', 0)} keys as of {_format_ms(cutoff)}: "
        f"key counts, types, {expiries} expiry times and {sampled} sampled values match"
    )
    if expired:
        detail += f"; {expired} keys with a TTL expired since the backup and were left out"
    subsets = [index for index, database in expected_databases.items() if int(database.get("stride", 1)) > 1]
    if subsets:
        detail += f"; databases {', '.join(sorted(subsets, key=int))} were checked on a subset of their keys"
    return CheckOutcome("fingerprint", True, True, detail)
