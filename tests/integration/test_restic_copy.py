"""`copy_snapshot` with the real restic between two local repositories: the copy's id without a listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from replica.restic.backup import backup_tree
from replica.restic.command import Repository, Restic
from replica.restic.copy import copied_snapshot_id, copy_snapshot
from replica.restic.snapshots import list_snapshots
from tests.support.key_folders import cheapen_repository_keys, key_folder_of

PASSWORD = SecretStr("copy-test-password")


@pytest.fixture(scope="module")
def repositories(tmp_path_factory: pytest.TempPathFactory) -> tuple[Restic, Path, Repository, Repository, str]:
    """Two fresh repositories (the primary holding one snapshot) and a restic that logs its subcommands."""
    folder = tmp_path_factory.mktemp("copy")
    log = folder / "calls.log"
    wrapper = folder / "restic"
    wrapper.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec restic "$@"\n')
    wrapper.chmod(0o755)
    restic = Restic(binary=str(wrapper))
    primary = Repository("primary", str(folder / "primary"), PASSWORD)
    offsite = Repository("offsite", str(folder / "offsite"), PASSWORD)
    for repository in (primary, offsite):
        restic.run(repository, ["init"])
        # Each copy opens both repositories: cheap keys save ~0.5 s of scrypt per open (tests/support/cheap_keys.py).
        cheapen_repository_keys(key_folder_of(repository.url, {}), PASSWORD.get_secret_value())
    tree = folder / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("alpha\n")
    summary = backup_tree(restic, primary, tree, tags=["replica"], host="test", exclude=())
    return restic, log, primary, offsite, summary.snapshot_id


def test_the_copy_s_id_comes_from_restic_copy_itself(
    repositories: tuple[Restic, Path, Repository, Repository, str],
) -> None:
    restic, log, primary, offsite, snapshot_id = repositories
    log.write_text("")

    copied = copy_snapshot(restic, primary, offsite, snapshot_id)
    second = copy_snapshot(restic, primary, offsite, snapshot_id)

    # One restic process per copy: a `snapshots` listing would cost another key derivation (~0.5 s).
    assert log.read_text().splitlines() == ["copy", "copy"]
    listed = [snapshot for snapshot in list_snapshots(restic, offsite) if snapshot.original]
    assert len(listed) == 1
    assert listed[0].original is not None and listed[0].original.startswith(snapshot_id)
    assert copied.short_id == listed[0].short_id
    assert second.short_id == copied.short_id  # restic skipped it and named the earlier copy


def test_copy_output_without_the_expected_line_names_no_snapshot() -> None:
    assert copied_snapshot_id("snapshot 0a1b2c3d of [/x] at 2026-11-27)\n  copy started\n", "0a1b2c3d") is None
    assert copied_snapshot_id("snapshot 11111111 saved\nsnapshot 22222222 saved\n", "0a1b2c3d") is None
    assert (
        copied_snapshot_id("skipping source snapshot 99999999, was already copied to snapshot 12345678\n", "0a1b2c3d")
        is None
    )
    assert copied_snapshot_id(
        "\nsnapshot 0a1b2c3d of [/x]\n[0:00] 100.00%\n\nsnapshot 4e5f6a7b saved\n", "0a1b2c3d"
    ) == ("4e5f6a7b")
