"""A scratch PostgreSQL server whose replica process died is stopped by the next sweep, and its data directory
removed when it was a scratch copy of replica's own (never a target an engineer named); one whose replica still
runs, one that is not replica's scratch server (another socket folder), or one whose owner's file another user
wrote, is left alone."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

from replica.stores.scratch_servers import WORK_DIR_PREFIX, stop_abandoned_servers


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _fake_pg_ctl(bin_dir: Path, calls: Path) -> None:
    """A pg_ctl that records its arguments and 'stops' the server by removing postmaster.pid."""
    bin_dir.mkdir()
    script = bin_dir / "pg_ctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nrm -f "$2/postmaster.pid"\n')
    script.chmod(0o755)


def _scratch_server(
    tmp_path: Path, name: str, pid: int, bin_dir: Path, *, removable: bool = True, socket_dir: Path | None = None
) -> tuple[Path, Path, Path]:
    data_dir, work_dir = tmp_path / f"pgdata-{name}", tmp_path / f"{WORK_DIR_PREFIX}{name}"
    data_dir.mkdir()
    # postmaster.pid's fifth line is the server's socket folder: replica's scratch servers listen in their work_dir.
    running_in = socket_dir or work_dir
    (data_dir / "postmaster.pid").write_text(f"4242\n{data_dir}\n1700000000\n5432\n{running_in}\n\n")
    work_dir.mkdir()
    owner = {
        "pid": pid,
        "host": socket.gethostname(),
        "data_dir": str(data_dir),
        "work_dir": str(work_dir),
        "bin_dir": str(bin_dir),
        "user": pwd.getpwuid(os.geteuid()).pw_name,
        "removable": removable,
    }
    record = tmp_path / f"{work_dir.name}.json"
    record.write_text(json.dumps(owner))
    return data_dir, work_dir, record


def test_the_server_of_a_dead_replica_is_stopped_and_its_directories_removed(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    _fake_pg_ctl(tmp_path / "bin", calls)
    dead = _scratch_server(tmp_path, "dead", _dead_pid(), tmp_path / "bin")
    alive = _scratch_server(tmp_path, "alive", os.getpid(), tmp_path / "bin")

    stopped = stop_abandoned_servers(lambda pid: pid == os.getpid(), tmp_path)

    assert stopped == [dead[0]]
    assert not any(path.exists() for path in dead)
    assert calls.read_text().split() == ["-D", str(dead[0]), "stop", "-m", "immediate", "-w"]
    assert all(path.exists() for path in alive)


def test_an_owners_file_written_by_another_user_names_nothing_to_remove(tmp_path: Path) -> None:
    _fake_pg_ctl(tmp_path / "bin", tmp_path / "calls")
    forged = _scratch_server(tmp_path, "forged", _dead_pid(), tmp_path / "bin")
    nobody = pwd.getpwnam("nobody")
    os.chown(forged[2], nobody.pw_uid, nobody.pw_gid)  # the suite runs as root (PostgreSQL servers as postgres)
    assert stop_abandoned_servers(lambda pid: False, tmp_path) == []
    assert forged[0].exists() and not (tmp_path / "calls").exists()
    os.chown(forged[2], os.geteuid(), os.getegid())
    forged[2].write_text("not json")
    assert stop_abandoned_servers(lambda pid: False, tmp_path) == []
    assert forged[0].exists()


def test_a_named_target_is_never_deleted_and_a_server_that_is_not_replicas_is_never_stopped(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    _fake_pg_ctl(tmp_path / "bin", calls)
    # GIVEN a dead restore's scratch server still running on the engineer's target, and a second dead restore whose
    # target an engineer has meanwhile started by hand (its server listens elsewhere)
    named = _scratch_server(tmp_path, "named", _dead_pid(), tmp_path / "bin", removable=False)
    handed = _scratch_server(
        tmp_path, "handed", _dead_pid(), tmp_path / "bin", removable=False, socket_dir=Path("/var/run/postgresql")
    )

    stopped = stop_abandoned_servers(lambda pid: False, tmp_path)

    # THEN the scratch server is stopped but the unfinished restore is left in place; the engineer's server is
    # neither stopped nor its directory touched; both owner's files are gone
    assert stopped == [named[0]]
    assert named[0].exists() and not named[1].exists() and not named[2].exists()
    assert calls.read_text().split() == ["-D", str(named[0]), "stop", "-m", "immediate", "-w"]
    assert (handed[0] / "postmaster.pid").exists() and handed[1].exists() and not handed[2].exists()
