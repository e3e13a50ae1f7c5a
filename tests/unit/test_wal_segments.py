"""WAL names, LSNs and gaps (pure), and sealing: what PostgreSQL's names mean for each segment size, and that a
sealed file opens only under its own name and key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from replica.wal import keys
from replica.wal.sealing import KEY_BYTES, SealBroken, SealingKey, content_tag, seal, unseal
from replica.wal.segments import (
    DEFAULT_SEGMENT_BYTES,
    Segment,
    find_gaps,
    format_lsn,
    is_archivable_name,
    parse_lsn,
    parse_segment_name,
    segment_of_lsn,
)

ONE_MIB = 1024 * 1024


def test_lsns_read_and_print_as_postgresql_does() -> None:
    assert parse_lsn("0/2000028") == 0x2000028
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    with pytest.raises(ValueError, match="not a log sequence number"):
        parse_lsn("0x2000028")


@pytest.mark.parametrize(
    ("lsn", "segment_bytes", "name"),
    [
        ("0/2000028", DEFAULT_SEGMENT_BYTES, "000000010000000000000002"),
        ("1/FF000000", DEFAULT_SEGMENT_BYTES, "0000000100000001000000FF"),
        ("0/2000028", ONE_MIB, "000000010000000000000020"),
        ("1/FFF00000", ONE_MIB, "000000010000000100000FFF"),
    ],
)
def test_a_segment_name_follows_from_the_lsn_and_the_segment_size(lsn: str, segment_bytes: int, name: str) -> None:
    segment = segment_of_lsn(parse_lsn(lsn), 1, segment_bytes)
    assert segment.name(segment_bytes) == name
    assert parse_segment_name(name, segment_bytes) == segment
    assert segment.start_lsn(segment_bytes) <= parse_lsn(lsn) < segment.end_lsn(segment_bytes)


def test_names_that_do_not_fit_the_segment_size_are_refused() -> None:
    # 16 MiB segments: 256 per log, so a "segment" part of 0x100 cannot exist.
    with pytest.raises(ValueError, match="cannot be a segment"):
        parse_segment_name("000000010000000000000100", DEFAULT_SEGMENT_BYTES)
    with pytest.raises(ValueError, match="power of two"):
        parse_segment_name("000000010000000000000001", 3 * ONE_MIB)


def test_archivable_names() -> None:
    assert is_archivable_name("000000010000000000000002")
    assert is_archivable_name("00000002.history")
    assert is_archivable_name("000000010000000000000002.00000028.backup")
    # A promoted standby archives the last segment of its old timeline as `.partial`: refusing it would stop
    # archiving for good (PostgreSQL retries the same file forever while pg_wal fills up).
    assert is_archivable_name("000000010000000000000002.partial")
    assert not is_archivable_name("00000001000000000000000.partial")
    assert not is_archivable_name("../000000010000000000000002")


def test_gaps_are_runs_of_missing_numbers_on_any_timeline_with_their_lsn_range() -> None:
    present = [Segment(1, n) for n in (2, 3, 6)] + [Segment(2, 9)]
    gaps = find_gaps(present, 2, 10, ONE_MIB)
    assert [(gap.first, gap.last) for gap in gaps] == [(4, 5), (7, 8), (10, 10)]
    assert gaps[0].describe() == "LSN 0/400000-0/600000 (2 segments)"
    assert gaps[2].describe() == "LSN 0/A00000-0/B00000 (1 segment)"
    assert find_gaps(present, 2, 3, ONE_MIB) == []


def random_key() -> SealingKey:
    return SealingKey(os.urandom(KEY_BYTES), os.urandom(KEY_BYTES))


def test_a_sealed_file_opens_only_with_its_key_and_its_own_name() -> None:
    key = random_key()
    content = b"wal" * 10000
    sealed = seal(key, "000000010000000000000002", content)
    assert b"walwal" not in sealed
    assert unseal(key, "000000010000000000000002", sealed) == content
    with pytest.raises(SealBroken, match="authentication failed"):
        unseal(key, "000000010000000000000003", sealed)  # copied under another segment's name
    with pytest.raises(SealBroken, match="authentication failed"):
        unseal(random_key(), "000000010000000000000002", sealed)
    assert key.cipher_key.hex() not in repr(key)


def test_the_content_tag_tells_the_same_content_from_another() -> None:
    key = random_key()
    assert content_tag(key, "a", b"x") == content_tag(key, "a", b"x")
    assert content_tag(key, "a", b"x") != content_tag(key, "a", b"y")
    assert content_tag(key, "a", b"x") != content_tag(random_key(), "a", b"x")


@pytest.fixture
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files at a test's cost (the real N=2^17 costs ~0.5 s a derivation); the refusal of weak ones is tested
    on its own."""
    monkeypatch.setattr(keys, "SCRYPT_N", 2**10)
    monkeypatch.setattr(keys, "MINIMUM_SCRYPT_N", 2**10)


@pytest.mark.usefixtures("cheap_scrypt")
def test_a_key_file_opens_only_with_its_password_and_job_and_holds_no_usable_key_without_them() -> None:
    content, key = keys.new_key_file(SecretStr("correct horse"), "billing")

    assert keys.open_key_file(content, SecretStr("correct horse"), "billing") == key
    for secret in (key.cipher_key, key.tag_key):  # the key itself is nowhere in the file, plain or base64
        assert secret not in content and base64.b64encode(secret) not in content
    with pytest.raises(keys.KeyFileRefused, match="does not open"):
        keys.open_key_file(content, SecretStr("wrong"), "billing")
    with pytest.raises(keys.KeyFileRefused, match="does not open"):
        keys.open_key_file(content, SecretStr("correct horse"), "other-job")  # copied into another job's folder
    with pytest.raises(keys.KeyFileRefused, match="not a WAL key file"):
        keys.open_key_file(b"{}", SecretStr("correct horse"), "billing")
    # Two archives never share a key, even under one password and job name.
    assert keys.new_key_file(SecretStr("correct horse"), "billing")[1] != key


def test_a_key_file_asking_for_a_weak_derivation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # restic's strength, and nothing weaker accepted: whoever can write to the bucket could otherwise plant a key
    # file that makes the password cheap to guess.
    assert keys.SCRYPT_N == keys.MINIMUM_SCRYPT_N >= 2**17
    monkeypatch.setattr(keys, "SCRYPT_N", 2**10)
    content, _ = keys.new_key_file(SecretStr("pw"), "billing")
    with pytest.raises(keys.KeyFileRefused, match="weaker than replica's"):
        keys.open_key_file(content, SecretStr("pw"), "billing")


@pytest.mark.usefixtures("cheap_scrypt")
def test_the_unwrapped_key_is_cached_0600_per_key_file_and_a_broken_cache_is_skipped(tmp_path: Path) -> None:
    content, key = keys.new_key_file(SecretStr("pw"), "billing")
    cache = tmp_path / "wal-keys"
    assert keys.cached_key(cache, content, "billing") is None

    keys.cache_key(cache, content, "billing", key)

    assert keys.cached_key(cache, content, "billing") == key
    (cached,) = cache.iterdir()
    assert cached.stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700
    other, _ = keys.new_key_file(SecretStr("pw"), "billing")
    assert keys.cached_key(cache, other, "billing") is None  # a replaced key file is never answered from the cache
    assert keys.cached_key(cache, content, "shop") is None  # nor another job's key file copied in
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    keys.cache_key(blocked / "wal-keys", content, "billing", key)  # cannot be written: skipped, no error
    assert keys.cached_key(blocked / "wal-keys", content, "billing") is None


@pytest.mark.usefixtures("cheap_scrypt")
def test_a_damaged_cached_key_is_not_used(tmp_path: Path) -> None:
    # A cached key that does not produce the key file's check value would seal segments nobody else can open.
    content, key = keys.new_key_file(SecretStr("pw"), "billing")
    cache = tmp_path / "wal-keys"
    keys.cache_key(cache, content, "billing", key)
    (cached,) = cache.iterdir()
    damaged = bytearray(cached.read_bytes())
    damaged[0] ^= 0x01
    cached.write_bytes(bytes(damaged))
    assert keys.cached_key(cache, content, "billing") is None
    assert keys.open_key_file(content, SecretStr("pw"), "billing") == key
