"""stores/sqlite.py on real SQLite files: online backup beside a writer, fingerprints, integrity, staging, promotion."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from replica.config.models import SqliteStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.execute import run
from replica.stores.base import Target
from replica.stores.sqlite import SqliteStore, fingerprint_database, integrity_check

ROWS = [
    (1, "alice", 12.5, b"\x00\x01", None),
    (2, "bob", None, b"", "note"),
    (3, "Zoë ✓", -0.1, None, "ünïcode"),
]


def create_database(path: Path, rows: Iterable[tuple[Any, ...]] = ROWS, journal_mode: str = "delete") -> None:
    """Create a small database with an `orders` and an empty `audit` table."""
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA journal_mode={journal_mode}")
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL, raw BLOB, memo)")
        connection.execute("CREATE TABLE audit (at TEXT)")
        connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)
    connection.close()


def create_large_database(path: Path) -> None:
    """Create a database of many pages (a table and an index over it), for corruption tests."""
    generator = random.Random(7)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT)")
        connection.execute("CREATE INDEX events_kind ON events (kind)")
        connection.executemany(
            "INSERT INTO events (kind, payload) VALUES (?, ?)",
            [(f"kind-{generator.randrange(50)}", "p" * generator.randrange(50, 400)) for _ in range(3000)],
        )
    connection.close()


def store_for(path: Path) -> SqliteStore:
    return SqliteStore(SqliteStoreConfig(kind="sqlite", path=path))


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_prepare_backup_copies_only_committed_data_beside_an_open_writer(tmp_path: Path, journal_mode: str) -> None:
    source = tmp_path / "app.sqlite3"
    create_database(source, journal_mode=journal_mode)
    committed = fingerprint_database(source)
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany("INSERT INTO orders (customer) VALUES (?)", [(f"uncommitted-{n}",) for n in range(50)])
    writer.execute("UPDATE orders SET amount = 999 WHERE id = 1")
    scratch = tmp_path / "scratch"
    dump = tmp_path / "dump.sqlite3"
    try:
        with store_for(source).prepare_backup(scratch, "app") as prepared:
            assert prepared.source.stored_name == "/app.sqlite3"
            assert prepared.source.producer is not None
            writer.execute("COMMIT")
            fingerprint = prepared.fingerprint()
            completed = run(prepared.source.producer, stdout_path=dump)
            prepared.verify_producer(completed)
    finally:
        writer.close()

    assert completed.succeeded
    assert fingerprint == committed
    assert fingerprint["tables"]["orders"]["rows"] == 3
    assert fingerprint_database(dump) == committed, "restic must get exactly the fingerprinted copy"
    assert fingerprint_database(source)["tables"]["orders"]["rows"] == 53
    assert list(scratch.iterdir()) == [], "the copy must be removed when the context closes"


def test_prepare_backup_of_a_missing_file_raises_and_creates_nothing(tmp_path: Path) -> None:
    source = tmp_path / "missing.sqlite3"

    with pytest.raises(StoreError, match="does not exist"), store_for(source).prepare_backup(tmp_path / "s", "app"):
        pytest.fail("the body must not run")

    assert not source.exists()


def test_prepare_backup_of_a_path_with_uri_characters(tmp_path: Path) -> None:
    # '#' ends the path part of a SQLite URI: an unquoted "file:/x/app#2.sqlite3?mode=ro" opens "/x/app"
    # read-write (creating it), and the backup silently holds an empty database.
    live = tmp_path / "live"
    live.mkdir()
    source = live / "app#2.sqlite3"
    create_database(source)
    reference = tmp_path / "reference.sqlite3"
    create_database(reference)
    dump = tmp_path / "dump.sqlite3"

    with store_for(source).prepare_backup(tmp_path / "scratch", "app") as prepared:
        assert prepared.source.producer is not None
        completed = run(prepared.source.producer, stdout_path=dump)

    assert completed.succeeded
    assert fingerprint_database(dump) == fingerprint_database(reference)
    assert [path.name for path in live.iterdir()] == ["app#2.sqlite3"], "no stray file may be created"


def test_fingerprint_ignores_insert_order_but_sees_one_changed_cell(tmp_path: Path) -> None:
    forward, backward, changed = tmp_path / "forward.db", tmp_path / "backward.db", tmp_path / "changed.db"
    create_database(forward, ROWS)
    create_database(backward, list(reversed(ROWS)))
    create_database(changed, ROWS)
    with sqlite3.connect(changed) as connection:
        connection.execute("UPDATE orders SET customer = 'bobby' WHERE id = 2")
    connection.close()

    original = fingerprint_database(forward)

    assert fingerprint_database(backward) == original
    modified = fingerprint_database(changed)
    assert modified != original
    assert modified["tables"]["orders"]["rows"] == original["tables"]["orders"]["rows"] == 3
    assert modified["tables"]["orders"]["digest"] != original["tables"]["orders"]["digest"]
    assert modified["tables"]["audit"] == original["tables"]["audit"] == {"rows": 0, "digest": "0" * 16}


def test_fingerprint_sees_a_blob_change(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    create_database(first)
    create_database(second)
    with sqlite3.connect(second) as connection:
        connection.execute("UPDATE orders SET raw = x'0002' WHERE id = 1")
    connection.close()

    assert fingerprint_database(first) != fingerprint_database(second)


def test_integrity_check_passes_on_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.db"
    create_large_database(path)

    outcome = integrity_check(path)

    assert outcome.passed
    assert outcome.name == "integrity"
    assert outcome.detail == "PRAGMA integrity_check: ok"


def test_integrity_check_fails_on_a_corrupted_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    create_large_database(path)
    with sqlite3.connect(path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        page_count = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.close()
    assert page_count > 20
    with path.open("r+b") as file:
        file.seek((page_count // 2) * page_size)
        file.write(random.Random(1).randbytes(page_size))

    outcome = integrity_check(path)

    assert not outcome.passed
    assert outcome.critical
    assert outcome.detail != "PRAGMA integrity_check: ok"


def test_check_restored_does_not_compare_a_damaged_database(tmp_path: Path) -> None:
    path = tmp_path / "restored.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192)

    checks = store_for(tmp_path / "live.db").check_restored(
        Target(description="restored", path=path), {"tables": {}}, VerificationConfig()
    )

    assert [(check.name, check.passed) for check in checks] == [("integrity", False), ("fingerprint", False)]
    assert checks[1].detail == "not compared: the database is damaged"


def test_check_restored_compares_row_counts(tmp_path: Path) -> None:
    original, restored = tmp_path / "original.db", tmp_path / "restored.db"
    create_database(original)
    create_database(restored, ROWS[:2])
    store = store_for(original)
    target = Target(description="restored", path=restored)

    faithful = store.check_restored(
        Target(description="same", path=original), fingerprint_database(original), VerificationConfig()
    )
    short = store.check_restored(target, fingerprint_database(original), VerificationConfig())

    assert all(check.passed for check in faithful)
    assert short[0].passed
    assert not short[1].passed
    assert short[1].detail == "row count of orders: expected 3, restored 2"


def test_staging_and_promote_keep_the_existing_file_aside(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite3"
    final_path = tmp_path / "restore" / "app.sqlite3"
    final_path.parent.mkdir()
    final_path.write_bytes(b"previous content")
    store = store_for(live)
    final = store.named_target(str(final_path))

    with store.staging_target(final, "run-7") as staged:
        assert staged.path is not None
        assert staged.path.parent.parent == final_path.parent
        assert not staged.path.exists()
        create_database(staged.path)
        moved = store.promote(staged, final, ".replaced-20261126")

    aside = final_path.with_name("app.sqlite3.replaced-20261126")
    assert moved == str(aside)
    assert aside.read_bytes() == b"previous content"
    reference = tmp_path / "reference.sqlite3"
    create_database(reference)
    assert fingerprint_database(final_path) == fingerprint_database(reference)
    assert sorted(path.name for path in final_path.parent.iterdir()) == [
        "app.sqlite3",
        "app.sqlite3.replaced-20261126",
    ], "the staging directory must be gone"


def test_promote_without_an_existing_target_moves_nothing_aside(tmp_path: Path) -> None:
    store = store_for(tmp_path / "live.sqlite3")
    final = store.named_target(str(tmp_path / "new" / "app.sqlite3"))
    assert final.path is not None

    with store.staging_target(Target(description="parent", path=tmp_path / "app.sqlite3"), "x") as staged:
        assert staged.path is not None
        create_database(staged.path)
        moved = store.promote(staged, final, ".replaced")

    assert moved is None
    assert integrity_check(final.path).passed


def test_staging_target_is_removed_when_not_promoted(tmp_path: Path) -> None:
    store = store_for(tmp_path / "live.sqlite3")
    final = store.named_target(str(tmp_path / "app.sqlite3"))

    with pytest.raises(RuntimeError), store.staging_target(final, "x") as staged:
        assert staged.path is not None
        create_database(staged.path)
        raise RuntimeError("restore failed")

    assert list(tmp_path.iterdir()) == []


def test_named_target_refuses_the_live_file_and_directories(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite3"
    store = store_for(live)

    with pytest.raises(UsageError, match="live database"):
        store.named_target(str(live))
    with pytest.raises(UsageError, match="directory"):
        store.named_target(str(tmp_path))
