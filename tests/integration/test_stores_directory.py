"""stores/directory.py on real trees: a missing source, fingerprints, staging and promotion beside a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from replica.config.models import DirectoryStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.stores.directory import DirectoryStore


def store_for(path: Path) -> DirectoryStore:
    return DirectoryStore(DirectoryStoreConfig(kind="directory", path=path), sample_files=4)


def fill_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "deeper" / "c.txt").write_text("gamma ✓\n")


def test_prepare_backup_of_a_missing_directory_raises(tmp_path: Path) -> None:
    store = store_for(tmp_path / "missing")

    with pytest.raises(StoreError, match="does not exist"), store.prepare_backup(tmp_path / "scratch", "files"):
        pytest.fail("the body must not run")

    assert not (tmp_path / "missing").exists()


def test_prepare_backup_of_a_file_instead_of_a_directory_raises(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")

    with pytest.raises(StoreError, match="not a directory"), store_for(path).prepare_backup(tmp_path / "s", "files"):
        pytest.fail("the body must not run")


def test_prepare_backup_fingerprints_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    fill_tree(root)

    with store_for(root).prepare_backup(tmp_path / "scratch", "files") as prepared:
        fingerprint = prepared.fingerprint()

    assert prepared.source.directory == root
    assert not prepared.source.is_stream
    assert prepared.fingerprint_first
    assert fingerprint["files"] == 3
    assert fingerprint["bytes"] == len("alpha\n") + 2560 + len("gamma ✓\n".encode())
    assert set(fingerprint["sample"]) == {"a.txt", "sub/b.bin", "sub/deeper/c.txt"}


def test_check_restored_finds_a_changed_file(tmp_path: Path) -> None:
    root, restored = tmp_path / "uploads", tmp_path / "restored"
    fill_tree(root)
    fill_tree(restored)
    store = store_for(root)
    with store.prepare_backup(tmp_path / "scratch", "files") as prepared:
        expected = prepared.fingerprint()
    target = store.named_target(str(restored))

    assert all(check.passed for check in store.check_restored(target, expected, VerificationConfig()))
    (restored / "sub" / "deeper" / "c.txt").write_text("GAMMA ✓\n")
    checks = store.check_restored(target, expected, VerificationConfig())
    assert checks[0].passed
    assert not checks[1].passed
    assert "1 of 3 files differ, e.g. sub/deeper/c.txt" in checks[1].detail


def test_promote_moves_an_existing_non_empty_target_aside(tmp_path: Path) -> None:
    store = store_for(tmp_path / "live")
    final_path = tmp_path / "restore" / "uploads"
    final_path.mkdir(parents=True)
    (final_path / "old.txt").write_text("previous\n")
    final = store.named_target(str(final_path))

    with store.staging_target(final, "run-9") as staged:
        assert staged.path is not None
        assert staged.path.parent == final_path.parent
        fill_tree(staged.path)
        moved = store.promote(staged, final, ".replaced-20261126")

    aside = final_path.with_name("uploads.replaced-20261126")
    assert moved == str(aside)
    assert [path.name for path in aside.iterdir()] == ["old.txt"]
    assert (aside / "old.txt").read_text() == "previous\n"
    assert (final_path / "sub" / "deeper" / "c.txt").read_text() == "gamma ✓\n"
    assert not (final_path / "old.txt").exists()
    assert sorted(path.name for path in final_path.parent.iterdir()) == ["uploads", "uploads.replaced-20261126"]


def test_promote_replaces_an_empty_target_without_moving_it_aside(tmp_path: Path) -> None:
    store = store_for(tmp_path / "live")
    final_path = tmp_path / "uploads"
    final_path.mkdir()
    final = store.named_target(str(final_path))

    with store.staging_target(final, "run-10") as staged:
        assert staged.path is not None
        fill_tree(staged.path)
        moved = store.promote(staged, final, ".replaced")

    assert moved is None
    assert (final_path / "a.txt").read_text() == "alpha\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["uploads"]


def test_named_target_refuses_the_live_tree_and_paths_inside_it(tmp_path: Path) -> None:
    live = tmp_path / "live"
    store = store_for(live)

    with pytest.raises(UsageError, match="live directory"):
        store.named_target(str(live))
    with pytest.raises(UsageError, match="live directory"):
        store.named_target(str(live / "inside"))
