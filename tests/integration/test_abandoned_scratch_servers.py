"""A scratch PostgreSQL server whose replica process died is stopped, and its data directory removed, by the next
sweep; one whose replica still runs, or whose owner's file another user wrote, is left alone."""

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


def _scratch_server(tmp_path: Path, name: str, pid: int, bin_dir: Path) -> tuple[Path, Path, Path]:
    data_dir, work_dir = tmp_path / f"pgdata-{name}", tmp_path / f"{WORK_DIR_PREFIX}{name}"
    data_dir.mkdir()
    (data_dir / "postmaster.pid").write_text("4242\n")
    work_dir.mkdir()
    owner = {
        "pid": pid,
        "host": socket.gethostname(),
        "data_dir": str(data_dir),
        "work_dir": str(work_dir),
        "bin_dir": str(bin_dir),
        "user": pwd.getpwuid(os.geteuid()).pw_name,
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
