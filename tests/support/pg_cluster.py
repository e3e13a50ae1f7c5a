"""A PostgreSQL cluster of the test's own (never the machine's shared server): `initdb` as the `postgres` OS user in
a fresh folder under /tmp, on a free loopback port, with WAL archiving through a command the test gives.

A PostgreSQL server refuses to run as root, and its archiver runs `replica wal-push` as `postgres`: that user must
reach the interpreter, the virtualenv, the checkout's sources and the deployment's files. `reachable_by_postgres`
adds o+x (traverse only, never read or list) to every folder above them that `postgres` cannot traverse, shared by
every pytest process of the host, and puts every mode back once no live one holds them (and at the end of every
pytest run, should the last holder have been killed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
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
from replica.processes import process_alive
from replica.stores.postgresql_server import server_bin_dir
from tests.support.s3server import free_port

SERVER_USER = "postgres"
# The folders opened to postgres and who holds them open, shared by every pytest process of the host: two runs (two
# checkouts) open the same parents, and the first to finish must not close them under the other.
TRAVERSE_STATE_PATH = Path(tempfile.gettempdir()) / "replica-tests-postgres-traverse.json"
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
def _traverse_state() -> Iterator[dict[str, Any]]:
    """Yield the state every pytest process of this host shares (one at a time): the pids holding folders open and
    the modes to put back. Holders that died are dropped: no count to keep exact."""
    # The temporary folder is everyone's: a file another user planted there (or a link) must not tell root which
    # folders to chmod.
    descriptor = os.open(TRAVERSE_STATE_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    if os.fstat(descriptor).st_uid != os.geteuid():
        os.close(descriptor)
        raise RuntimeError(f"{TRAVERSE_STATE_PATH} belongs to another user; remove it")
    with os.fdopen(descriptor, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        state: dict[str, Any] = json.loads(text) if text else {}
        state["holders"] = [pid for pid in state.get("holders", []) if process_alive(pid)]
        state.setdefault("changed", {})
        yield state
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(state))


@contextlib.contextmanager
def reachable_by_postgres(paths: Iterable[Path]) -> Iterator[None]:
    """Give o+x to every folder of `paths` and their parents that postgres cannot traverse; put the modes back when
    no live pytest process of this host (of any run, any checkout) holds them open any more."""
    paths = list(paths)
    failure: BaseException | None = None
    with _traverse_state() as state:
        # Held first and each mode recorded before its chmod: whatever happens below, the state is stored and the
        # finally puts back what was changed.
        state["holders"].append(os.getpid())
        changed: dict[str, int] = state["changed"]
        try:
            for path in paths:
                for folder in [*reversed(path.parents), path]:
                    if folder.is_dir() and not postgres_can_traverse(folder):
                        changed.setdefault(str(folder), folder.stat().st_mode & 0o7777)
                        folder.chmod(folder.stat().st_mode | 0o001)
        except BaseException as error:  # stored with the state, raised once it is written
            failure = error
    try:
        if failure is not None:
            raise failure
        yield
    finally:
        with _traverse_state() as state:
            with contextlib.suppress(ValueError):
                state["holders"].remove(os.getpid())
            restore_folder_modes(state)


def restore_folder_modes(state: dict[str, Any] | None = None) -> None:
    """Put back the modes `reachable_by_postgres` changed once no live process holds them open (a killed pytest
    worker counts as gone); `state` when the caller holds it already."""
    if state is None:
        with _traverse_state() as held:
            restore_folder_modes(held)
        return
    if state["holders"]:
        return
    for folder, mode in state["changed"].items():
        with contextlib.suppress(OSError):
            Path(folder).chmod(mode)
    state["changed"] = {}


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
    # Settings given on the server's command line: like Debian's /etc/postgresql, they are not in the data directory
    # (nor in a base backup of it).
    command_line: Mapping[str, str] = field(default_factory=dict)
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
        settings = shlex.join(f"-c{name}={value}" for name, value in self.command_line.items())
        options = ["-o", settings] if settings else []
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            *options,
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
def pg_cluster(
    archive_command: str, environment: Mapping[str, str], command_line: Mapping[str, str] | None = None
) -> Iterator[PgCluster]:
    """Yield a started cluster archiving with `archive_command` (and `command_line` settings given to the server
    outside its data directory); stopped and removed at the end."""
    cluster = PgCluster(postgres_folder("replica-pg-"), command_line=dict(command_line or {}))
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
