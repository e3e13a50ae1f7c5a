"""The directory store's walk and sample: exclusions as restic reads them, a bounded deterministic sample."""

from __future__ import annotations

import fnmatch
import random
from pathlib import Path

import pytest

from replica.stores.directory import PathSample, path_hash, walk_files
from tests.support.trees import EXCLUDE_PATTERNS, make_exclusion_tree


def excluded_by_reference(relative: str, patterns: tuple[str, ...]) -> bool:
    """restic 0.14's `--exclude` for a backup of ".", path by path: a relative pattern matches any run of consecutive
    components, a '/'-pattern the absolute path (none here: the tree is in a temporary folder). The integration
    tests check these rules against real restic."""
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("/"):
            continue
        wanted = pattern.strip("/").split("/")
        for start in range(len(parts) - len(wanted) + 1):
            window = parts[start : start + len(wanted)]
            if all(fnmatch.fnmatchcase(part, piece) for part, piece in zip(window, wanted, strict=True)):
                return True
    return False


def test_the_walk_keeps_exactly_what_the_path_by_path_rules_keep(tmp_path: Path) -> None:
    files = make_exclusion_tree(tmp_path)

    walked = {relative: size for relative, size in walk_files(tmp_path, EXCLUDE_PATTERNS)}

    expected = {relative for relative in files if not excluded_by_reference(relative, EXCLUDE_PATTERNS)}
    assert set(walked) == expected
    assert {"a.txt", "keep/b.txt", "build/main.c", "build/sub/x.o", "deep/err/file", "Upper.TMP"} <= expected
    assert {"logs/today.log", "keep/logs/today.log"} <= expected  # "/logs" is an absolute path, not below the tree
    assert "keep/build/main.o" not in expected and "keep/deep/er/file" not in expected  # at any depth
    assert all(walked[relative] == len(relative) for relative in walked)


def test_the_walk_without_patterns_yields_every_regular_file_and_no_link(tmp_path: Path) -> None:
    files = make_exclusion_tree(tmp_path)

    assert sorted(relative for relative, _ in walk_files(tmp_path)) == sorted(files)


def test_the_sample_is_the_smallest_path_hashes_whatever_the_order_offered() -> None:
    paths = [f"folder-{number % 7}/file-{number}" for number in range(500)]
    expected = sorted(sorted(paths, key=path_hash)[:16])
    for seed in range(3):
        random.Random(seed).shuffle(paths)
        sample = PathSample(16)
        for path in paths:
            sample.offer(path, len(path))

        assert [relative for relative, _ in sample.chosen()] == expected
        assert len(sample._heap) == 16


@pytest.mark.parametrize("count", [0, -1])
def test_a_sample_of_no_files_keeps_nothing(count: int) -> None:
    sample = PathSample(count)
    sample.offer("a", 1)

    assert sample.chosen() == []


def test_path_hash_is_fixed_across_machines_and_releases() -> None:
    # Stored fingerprints name the sampled files: the key that chose them must never change for this method.
    assert path_hash("folder-0001/file-00042.bin") == path_hash("folder-0001/file-00042.bin")
    assert path_hash("a.txt") == 0xC90EFC5142C899D5
