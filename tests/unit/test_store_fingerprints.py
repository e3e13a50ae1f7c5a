"""Fingerprint comparisons: per-table counts and digests, and sampled directory trees (files, no processes)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from replica.config.models import VerificationConfig
from replica.stores.directory import compare_tree, fingerprint_tree, walk_files
from replica.stores.tables import compare_tables

EXACT = VerificationConfig()
ONE_PERCENT = VerificationConfig(row_count_tolerance_percent=1.0)


def tables(**rows_and_digests: tuple[int, str]) -> dict[str, object]:
    return {"tables": {name: {"rows": rows, "digest": digest} for name, (rows, digest) in rows_and_digests.items()}}


def test_identical_tables_pass_with_totals_in_the_detail() -> None:
    expected = tables(orders=(120000, "aa11"), customers=(500, "bb22"))

    outcome = compare_tables(expected, tables(orders=(120000, "aa11"), customers=(500, "bb22")), EXACT)

    assert (outcome.name, outcome.passed, outcome.critical) == ("fingerprint", True, True)
    assert outcome.detail == "2 tables, 120500 rows: counts and content digests match"


def test_row_count_difference_fails_with_both_figures() -> None:
    outcome = compare_tables(tables(orders=(120000, "aa11")), tables(orders=(119874, "cc33")), EXACT)

    assert not outcome.passed
    assert outcome.detail == "row count of orders: expected 120000, restored 119874"


def test_digest_mismatch_with_equal_counts_fails() -> None:
    outcome = compare_tables(tables(orders=(10, "aa11")), tables(orders=(10, "ff99")), EXACT)

    assert not outcome.passed
    assert outcome.detail == "content of orders: digest expected aa11, restored ff99"


def test_missing_and_extra_tables_are_both_reported() -> None:
    outcome = compare_tables(tables(orders=(10, "a"), invoices=(5, "b")), tables(orders=(10, "a"), tmp=(1, "c")), EXACT)

    assert not outcome.passed
    assert outcome.detail == "table invoices: missing from the restore; unexpected tables in the restore: tmp"


def test_row_count_within_tolerance_passes_and_says_content_was_not_compared() -> None:
    outcome = compare_tables(tables(orders=(120000, "aa11")), tables(orders=(119874, "cc33")), ONE_PERCENT)

    assert outcome.passed
    assert "content not compared: orders (120000 -> 119874)" in outcome.detail


def test_tolerance_never_forgives_changed_content_at_equal_counts() -> None:
    outcome = compare_tables(tables(orders=(120000, "aa11")), tables(orders=(120000, "cc33")), ONE_PERCENT)

    assert not outcome.passed
    assert outcome.detail == "content of orders: digest expected aa11, restored cc33"


def test_row_count_beyond_tolerance_fails() -> None:
    outcome = compare_tables(tables(orders=(120000, "aa11")), tables(orders=(118000, "cc33")), ONE_PERCENT)

    assert not outcome.passed
    assert "expected 120000, restored 118000" in outcome.detail


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "b.bin").write_bytes(b"\x00" * 1000)
    (root / "sub" / "c.txt").write_bytes(b"gamma!")
    (root / "link").symlink_to(root / "a.txt")
    return root


def test_fingerprint_tree_counts_regular_files_and_digests_the_sample(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "live")

    fingerprint = fingerprint_tree(root, sample_count=10)

    assert fingerprint["files"] == 3
    assert fingerprint["bytes"] == 5 + 1000 + 6
    assert fingerprint["sample"] == {
        "a.txt": hashlib.sha256(b"alpha").hexdigest(),
        "b.bin": hashlib.sha256(b"\x00" * 1000).hexdigest(),
        "sub/c.txt": hashlib.sha256(b"gamma!").hexdigest(),
    }


def test_compare_tree_passes_for_a_faithful_copy(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "live")
    expected = fingerprint_tree(root, sample_count=10)
    restored = tmp_path / "restored"
    shutil.copytree(root, restored, symlinks=True)

    outcome = compare_tree(restored, list(walk_files(restored)), expected)

    assert outcome.passed
    assert outcome.detail == "3 files, 1011 bytes and 3 sampled digests match the backup"


def test_compare_tree_finds_changed_content_of_the_same_size(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "live")
    expected = fingerprint_tree(root, sample_count=10)
    (root / "sub" / "c.txt").write_bytes(b"GAMMA!")

    outcome = compare_tree(root, list(walk_files(root)), expected)

    assert not outcome.passed
    assert outcome.detail == "sampled content: 1 of 3 files differ, e.g. sub/c.txt"


def test_compare_tree_reports_missing_file_count_and_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "live")
    expected = fingerprint_tree(root, sample_count=10)
    (root / "b.bin").unlink()

    outcome = compare_tree(root, list(walk_files(root)), expected)

    assert not outcome.passed
    assert "file count: expected 3, restored 2" in outcome.detail
    assert "total bytes: expected 1011, restored 11" in outcome.detail
    assert "e.g. b.bin" in outcome.detail
