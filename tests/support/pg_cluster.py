"""A PostgreSQL cluster of the test's own (never the machine's shared server): `initdb` as the `postgres` OS user in
a fresh folder under /tmp, on a free loopback port, with WAL archiving through a command the test gives.

A PostgreSQL server refuses to run as root, and its archiver runs `replica wal-push` as `postgres`: that user must
reach the interpreter, the virtualenv, the checkout's sources and the deployment's files. `reachable_by_postgres`
adds o+x (traverse only, never read or list) to every folder above them that `postgres` cannot traverse, shared by
the pytest workers of every run on the machine (two checkouts tested at once share /root), and puts every mode back
when the last worker of the last run finishes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import replica
from replica.stores.postgresql_server import server_bin_dir
from tests.conftest import _workers_state
from tests.support.s3server import free_port

SERVER_USER = "postgres"
START_TIMEOUT_SECONDS = 60


def as_postgres(*argv: str) -> list[str]:
    """Return argv run as the postgres OS user."""
    return ["runuser", "-u", SERVER_USER, "--", *argv]


def postgres_can_traverse(folder: Path) -> bool:
    return subprocess.run(as_postgres("test", "-x", str(folder)), check=False).returncode == 0


def replica_paths() -> list[Path]:
    """Return what `python -m replica` run by postgres needs to reach: the interpreter, the venv, the sources."""
    return [
        Path(sys.executable).resolve().parent,
        Path(sys.prefix),
        Path(replica.__file__).resolve().parent,
    ]


@contextlib.contextmanager
def reachable_by_postgres(paths: Iterable[Path]) -> Iterator[None]:
    """Give o+x to every folder of `paths` and their parents that postgres cannot traverse; put the modes back when
    the last pytest worker using this leaves."""
    paths = list(paths)
    with _workers_state("postgres-traverse", every_run=True) as state:
        changed: dict[str, int] = state.setdefault("changed", {})
        for path in paths:
            for folder in [*reversed(path.parents), path]:
                if folder.is_dir() and not postgres_can_traverse(folder):
                    changed.setdefault(str(folder), folder.stat().st_mode & 0o7777)
                    folder.chmod(folder.stat().st_mode | 0o001)
        state["workers"] += 1
    try:
        yield
    finally:
        with _workers_state("postgres-traverse", every_run=True) as state:
            state["workers"] -= 1
            if state["workers"] == 0:
                for folder, mode in state.get("changed", {}).items():
                    with contextlib.suppress(OSError):
                        Path(folder).chmod(mode)


def postgres_folder(prefix: str, mode: int = 0o700) -> Path:
    """Return a new folder under /tmp owned by postgres (pytest's tmp folders are closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    entry = pwd.getpwnam(SERVER_USER)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    folder.chmod(mode)
    return folder


@dataclass
class PgCluster:
    """One cluster: its data directory, socket folder and log under `root` (owned by postgres), its port."""

    root: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=lambda: server_bin_dir(None, None))
    data_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def _run(self, *argv: str, environment: Mapping[str, str] | None = None, timeout: float = 60) -> str:
        result = subprocess.run(
            as_postgres(*argv),
            env=dict(environment) if environment is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"{argv[0]} exited {result.returncode}: {result.stderr}\n{self.log()}"
        return result.stdout

    def initdb(self, archive_command: str) -> None:
        """Create the cluster (1 MiB segments, trust, no fsync) archiving with `archive_command`."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            SERVER_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--wal-segsize=1",
        )
        self.configure(archive_command=archive_command)

    def configure(self, *, archive_command: str | None = None, **settings: str) -> None:
        """Append the test cluster's settings to postgresql.conf (the later line of a setting wins)."""
        self.socket_dir.mkdir(exist_ok=True)
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        values = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "max_wal_senders": "4",
            "track_commit_timestamp": "on",
        }
        if archive_command is not None:
            values.update(wal_level="replica", archive_mode="on", archive_command=archive_command, archive_timeout="1")
        values.update(settings)
        text = "".join(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in values.items())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# test cluster\n" + text)

    def start(self, environment: Mapping[str, str]) -> None:
        """Start the server with `environment` (its archiver inherits it) and wait until it accepts connections."""
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "start",
            environment={**environment, "PGPORT": str(self.port)},
            timeout=START_TIMEOUT_SECONDS + 10,
        )

    def stop(self) -> None:
        """Stop the server (fast) when it runs."""
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """Return an autocommit connection over TCP (trust)."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SERVER_USER, dbname=database, autocommit=True, connect_timeout=10
        )

    def query(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        with self.connect(database) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def wait_archived(self, timeout: float = 30) -> None:
        """Switch to a new segment and wait until the archiver pushed the one just closed."""
        segment = self.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            archived = self.query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0][0]
            if archived >= segment:
                return
            time.sleep(0.2)
        raise AssertionError(f"segment {segment} not archived in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """Return the server log's last lines."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


@contextlib.contextmanager
def pg_cluster(archive_command: str, environment: Mapping[str, str]) -> Iterator[PgCluster]:
    """Yield a started cluster archiving with `archive_command`; stopped and removed at the end."""
    cluster = PgCluster(postgres_folder("replica-pg-"))
    try:
        cluster.initdb(archive_command)
        cluster.start(environment)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def replica_command(*arguments: str) -> str:
    """Return a shell command line running this checkout's replica with this interpreter."""
    return shlex.join([sys.executable, "-m", "replica", *arguments])
