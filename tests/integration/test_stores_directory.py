"""stores/directory.py on real trees: a missing source, fingerprints old and new, bounded memory, staging and
promotion beside a target."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from replica.config.models import DirectoryStoreConfig, VerificationConfig
from replica.errors import StoreError, UsageError
from replica.stores import directory
from replica.stores.base import Target
from replica.stores.directory import DirectoryStore, fingerprint_tree, path_hash
from tests.support.trees import EXCLUDE_PATTERNS, make_exclusion_tree


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
    assert fingerprint["files"] == 3
    assert fingerprint["bytes"] == len("alpha\n") + 2560 + len("gamma ✓\n".encode())
    assert set(fingerprint["sample"]) == {"a.txt", "sub/b.bin", "sub/deeper/c.txt"}


def test_a_walk_still_running_when_its_backup_ended_is_abandoned(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    root.mkdir()
    for number in range(3000):
        (root / f"file-{number}").write_bytes(b"x")
    store = store_for(root)

    with store.prepare_backup(tmp_path / "scratch", "files") as prepared:
        during = prepared.fingerprint()
    # The backup's context is closed (restic failed, say): a walk that only starts now stops early.
    with pytest.raises(StoreError, match=r"walk of .*uploads abandoned after 1024 files"):
        prepared.fingerprint()

    assert during["files"] == 3000


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


def evenly_spread_fingerprint(root: Path, count: int) -> dict[str, object]:
    """The fingerprint as replica wrote it before sampling was versioned: no `sampling` key, the sample spread
    evenly over the sorted list of files (kept here byte for byte, since such fingerprints are stored for good)."""
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() and not path.is_symlink())
    step = len(files) / count
    chosen = files if len(files) <= count else [files[int(index * step)] for index in range(count)]
    return {
        "files": len(files),
        "bytes": sum((root / relative).stat().st_size for relative in files),
        "sample": {relative: hashlib.sha256((root / relative).read_bytes()).hexdigest() for relative in chosen},
    }


def fill_many(root: Path, folders: int, per_folder: int) -> None:
    for folder in range(folders):
        (root / f"folder-{folder:02d}").mkdir(parents=True)
        for number in range(per_folder):
            (root / f"folder-{folder:02d}" / f"file-{number:03d}.txt").write_text(f"{folder}/{number}\n" * 3)


def test_a_fingerprint_written_before_sampling_was_versioned_still_verifies(tmp_path: Path) -> None:
    root, restored = tmp_path / "uploads", tmp_path / "restored"
    fill_many(root, 5, 20)
    old = evenly_spread_fingerprint(root, 4)
    shutil.copytree(root, restored)
    store = store_for(root)
    target = store.named_target(str(restored))

    checks = store.check_restored(target, old, VerificationConfig())

    assert [check.passed for check in checks] == [True, True]
    assert checks[1].detail == "100 files, 1350 bytes and 4 sampled digests match the backup"
    sampled = next(iter(old["sample"]))  # type: ignore[call-overload]
    (restored / sampled).write_text("changed, same size?\n")
    checks = store.check_restored(target, old, VerificationConfig())
    assert not checks[1].passed
    assert f"1 of 4 files differ, e.g. {sampled}" in checks[1].detail


def test_a_new_fingerprint_names_its_sampling_and_verifies(tmp_path: Path) -> None:
    root, restored = tmp_path / "uploads", tmp_path / "restored"
    fill_many(root, 5, 20)
    store = store_for(root)
    with store.prepare_backup(tmp_path / "scratch", "files") as prepared:
        fingerprint = prepared.fingerprint()
    shutil.copytree(root, restored)
    target = store.named_target(str(restored))

    assert fingerprint["sampling"] == "smallest-path-hash"
    assert fingerprint["files"] == 100
    assert fingerprint["bytes"] == 1350
    assert sorted(fingerprint["sample"]) == sorted(sorted(fingerprint_paths(root), key=path_hash)[:4])
    assert [check.passed for check in store.check_restored(target, fingerprint, VerificationConfig())] == [True, True]
    sampled = next(iter(fingerprint["sample"]))
    (restored / sampled).unlink()
    checks = store.check_restored(target, fingerprint, VerificationConfig())
    assert not checks[1].passed
    assert "file count: expected 100, restored 99" in checks[1].detail
    assert f"e.g. {sampled}" in checks[1].detail


def fingerprint_paths(root: Path) -> list[str]:
    return [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]


def test_the_same_tree_written_in_another_order_gets_the_same_fingerprint(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    fill_many(first, 4, 25)
    second.mkdir()
    for path in sorted(fingerprint_paths(first), reverse=True):
        (second / path).parent.mkdir(exist_ok=True)
        (second / path).write_bytes((first / path).read_bytes())

    assert fingerprint_tree(first, 8) == fingerprint_tree(second, 8)


def test_fingerprinting_holds_no_list_of_the_tree_s_files(tmp_path: Path) -> None:
    # 10,000 files: the list of them with their stat results took ~7.5 MB; the walk holds one listing per level
    # and the digest its 1 MiB read buffer.
    root = tmp_path / "many"
    fill_many(root, 10, 1000)

    tracemalloc.start()
    try:
        fingerprint = fingerprint_tree(root, 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert fingerprint["files"] == 10_000
    assert len(fingerprint["sample"]) == 32
    assert peak < 2 << 20, f"fingerprint of 10,000 files peaked at {peak} bytes of Python objects"


def test_verifying_a_restored_tree_holds_no_list_of_its_files(tmp_path: Path) -> None:
    root = tmp_path / "many"
    fill_many(root, 10, 1000)
    store = store_for(tmp_path / "live")
    expected = fingerprint_tree(root, 4)

    tracemalloc.start()
    try:
        checks = store.check_restored(Target("tree", path=root), expected, VerificationConfig())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [check.passed for check in checks] == [True, True]
    assert checks[0].detail == "10000 files restored and readable"
    assert peak < 2 << 20, f"checking 10,000 restored files peaked at {peak} bytes of Python objects"


def test_a_sampled_file_deleted_after_the_walk_leaves_the_sample_and_the_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "uploads"
    fill_many(root, 2, 10)
    victim = sorted(fingerprint_paths(root), key=path_hash)[0]
    original_digest = directory.file_digest

    def delete_first(path: Path) -> str:
        if path == root / victim:
            path.unlink()
        return original_digest(path)

    monkeypatch.setattr(directory, "file_digest", delete_first)
    fingerprint = fingerprint_tree(root, 4)

    assert victim not in fingerprint["sample"]
    assert len(fingerprint["sample"]) == 3
    assert fingerprint["files"] == 19
    assert fingerprint["bytes"] == sum((root / path).stat().st_size for path in fingerprint_paths(root))


def restic_backed_up_files(tree: Path, repository: Path, patterns: tuple[str, ...]) -> set[str]:
    """Back `tree` up as replica does (".", from inside it) into a local repository; return the files restic kept."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repository.parent)}
    environment.update(RESTIC_REPOSITORY=str(repository), RESTIC_PASSWORD="exclude-test")
    subprocess.run(["restic", "init"], env=environment, check=True, capture_output=True, timeout=120)
    excludes = [argument for pattern in patterns for argument in ("--exclude", pattern)]
    subprocess.run(
        ["restic", "backup", "--json", *excludes, "."],
        cwd=tree,
        env=environment,
        check=True,
        capture_output=True,
        timeout=120,
    )
    listing = subprocess.run(
        ["restic", "ls", "--json", "latest"], env=environment, check=True, capture_output=True, text=True, timeout=120
    ).stdout
    nodes = [json.loads(line) for line in listing.splitlines() if line.strip()]
    return {node["path"].lstrip("/") for node in nodes if node.get("struct_type") == "node" and node["type"] == "file"}


def test_the_walk_leaves_out_exactly_what_restic_leaves_out(tmp_path: Path) -> None:
    # GIVEN a tree touched by every kind of pattern: one component, several in a row at any depth, absolute paths
    tree = tmp_path / "tree"
    tree.mkdir()
    make_exclusion_tree(tree)
    patterns = (*EXCLUDE_PATTERNS, f"{tree}/logs")

    # WHEN restic backs it up with those patterns, and replica walks it for the fingerprint
    kept_by_restic = restic_backed_up_files(tree, tmp_path / "repository", patterns)
    walked = {relative for relative, _ in directory.walk_files(tree, patterns)}

    # THEN both keep the same files (a difference would fail every verification on the file count)
    assert walked == kept_by_restic
    assert "keep/build/main.o" not in walked and "keep/deep/er/file" not in walked
    assert "logs/today.log" not in walked and "keep/logs/today.log" in walked
