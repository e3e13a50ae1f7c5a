"""The e2e fixture that opens folders to the postgres OS user puts every mode back, whatever goes wrong: a chmod
that fails midway, a pytest worker that was killed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pg_cluster
from tests.support.pg_cluster import reachable_by_postgres, restore_folder_modes


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Yield /tmp/X with X/inner/leaf, X and inner closed to others (0700), with a shared state of its own."""
    monkeypatch.setattr(pg_cluster, "TRAVERSE_STATE_PATH", tmp_path / "traverse.json")
    root = Path(tempfile.mkdtemp(prefix="replica-traverse-", dir="/tmp"))
    (root / "inner" / "leaf").mkdir(parents=True)
    (root / "inner").chmod(0o700)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def _state() -> dict[str, object]:
    return dict(json.loads(pg_cluster.TRAVERSE_STATE_PATH.read_text()))


def test_a_chmod_that_fails_midway_leaves_no_folder_opened(closed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Path.chmod

    def chmod(self: Path, mode: int) -> None:
        if self.name == "inner" and mode & 0o001:
            raise PermissionError(1, "Operation not permitted", str(self))
        original(self, mode)

    monkeypatch.setattr(Path, "chmod", chmod)
    with pytest.raises(PermissionError), reachable_by_postgres([closed / "inner" / "leaf"]):
        pytest.fail("the block must not run")
    assert closed.stat().st_mode & 0o777 == 0o700  # opened first, then put back
    assert _state() == {"holders": [], "changed": {}}


def test_the_folders_stay_open_while_a_live_process_holds_them_and_close_once_none_does(closed: Path) -> None:
    with reachable_by_postgres([closed / "inner" / "leaf"]):
        assert closed.stat().st_mode & 0o777 == 0o701 and (closed / "inner").stat().st_mode & 0o777 == 0o701
        # A worker of another run that was killed while holding them: it never left.
        killed = subprocess.Popen([sys.executable, "-c", "pass"])
        killed.wait()
        state = _state()
        pg_cluster.TRAVERSE_STATE_PATH.write_text(json.dumps({**state, "holders": [killed.pid, os.getpid()]}))
        restore_folder_modes()  # what every pytest run does at its end: this process still holds them
        assert closed.stat().st_mode & 0o777 == 0o701
    assert closed.stat().st_mode & 0o777 == 0o700 and (closed / "inner").stat().st_mode & 0o777 == 0o700
    assert _state() == {"holders": [], "changed": {}}


def test_the_end_of_a_run_puts_back_what_a_killed_last_holder_left_open(closed: Path) -> None:
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    closed.chmod(0o701)
    changed = {"holders": [killed.pid], "changed": {str(closed): 0o700}}
    pg_cluster.TRAVERSE_STATE_PATH.write_text(json.dumps(changed))

    restore_folder_modes()  # pytest_unconfigure

    assert closed.stat().st_mode & 0o777 == 0o700
