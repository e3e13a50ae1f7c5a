"""`forget_and_prune` against a fake restic: what restic skipped while exiting 0 is reported, not assumed gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from replica.errors import RepositoryLocked
from replica.restic.command import Repository, Restic
from replica.restic.prune import forget_and_prune

REPOSITORY = Repository(name="primary", url="/nonexistent/repository", password=SecretStr("not-a-secret"))
STILL_LISTED = "bbbbbbbb" + "1" * 56


def fake_restic(folder: Path, forget_body: str) -> tuple[Restic, Path]:
    """Return a Restic running a fake binary that logs its arguments, runs `forget_body` for forget, and lists
    one snapshot (STILL_LISTED) for snapshots."""
    log = folder / "calls.log"
    listing = json.dumps([{"id": STILL_LISTED, "short_id": STILL_LISTED[:8], "time": "2026-11-27T10:00:00Z"}])
    script = folder / "restic"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'case "$2" in\n'
        f"  forget) {forget_body} ;;\n"
        f"  snapshots) echo '{listing}' ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return Restic(binary=str(script)), log


def test_ids_restic_skipped_with_exit_0_are_returned_as_still_listed(tmp_path: Path) -> None:
    # restic 0.14 skips an id it cannot match or load, says so on stderr, and still exits 0.
    restic, log = fake_restic(tmp_path, "echo 'Ignoring \"bbbbbbbb\": multiple IDs with prefix' >&2; exit 0")
    assert forget_and_prune(restic, REPOSITORY, ["aaaaaaaa", "bbbbbbbb"]) == ["bbbbbbbb"]
    assert log.read_text().splitlines() == ["--json forget --prune aaaaaaaa bbbbbbbb", "--json snapshots --no-lock"]


def test_a_failed_forget_raises_the_classified_error_and_lists_nothing(tmp_path: Path) -> None:
    restic, log = fake_restic(
        tmp_path, "echo 'Fatal: unable to create lock in backend: repository is already locked' >&2; exit 1"
    )
    with pytest.raises(RepositoryLocked):
        forget_and_prune(restic, REPOSITORY, ["aaaaaaaa"])
    assert log.read_text().splitlines() == ["--json forget --prune aaaaaaaa"]
