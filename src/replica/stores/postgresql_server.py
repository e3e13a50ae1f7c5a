"""Scratch PostgreSQL servers on restored data directories: start one as the job's `server_user`, wait for its
recovery, read it, stop it. Used by point-in-time restores (which hand the data directory over) and by the
verification of physical backups (which remove it).

A scratch server listens on its Unix socket only (`listen_addresses` empty), in a folder of its own that only the
server's user (and root) can enter, with a `pg_hba.conf` of its own that trusts that socket: nobody else on the host
can reach the restored data while it is checked. It never archives (`archive_mode=off`): a restored cluster that
pushed its WAL into the job's archive would mix a second history into the source's. It recovers without hot standby
(`hot_standby=off`): nothing is read before promotion, and the source's max_connections and other slot counts, often
in a postgresql.conf outside the data directory, need not be repeated.

Every process runs through `replica.execute` (`pg_ctl` as `server_user` via `runuser` when replica runs as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from replica.errors import StoreError, last_meaningful_line
from replica.execute import Command, as_user, run
from replica.stores.scratch_servers import WORK_DIR_PREFIX

POSTGRESQL_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0
LOG_TAIL_LINES = 15
POLL_SECONDS = 0.2


def server_bin_dir(bin_dir: Path | None, version_num: int | None) -> Path:
    """Return the folder of the server programs: `bin_dir` when the job names one, else Debian's folder of the
    source's major version (`version_num` as `server_version_num`), else the newest installed."""
    if bin_dir is not None:
        return bin_dir
    if version_num:
        candidate = POSTGRESQL_ROOT / str(version_num // 10000) / "bin"
        if (candidate / "postgres").exists():
            return candidate
    installed = sorted(
        (path for path in POSTGRESQL_ROOT.glob("*/bin") if (path / "postgres").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not installed:
        raise StoreError(
            f"no PostgreSQL server programs under {POSTGRESQL_ROOT} (install Debian's postgresql package, or set "
            "the job's store.bin_dir)"
        )
    return installed[-1]


def free_port() -> int:
    """Return a TCP port number of 127.0.0.1 that nothing listens on right now (names the server's socket file)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def user_ids(user: str) -> tuple[int, int]:
    """Return the uid and gid of an operating-system user. Raises StoreError when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise StoreError(f"operating-system user '{user}' (the job's store.server_user) does not exist") from None
    return entry.pw_uid, entry.pw_gid


def give_to(path: Path, user: str, mode: int = 0o700) -> None:
    """Make `path` (a folder) owned by `user` with `mode` (PostgreSQL wants its data directory 0700)."""
    uid, gid = user_ids(user)
    os.chown(path, uid, gid)
    path.chmod(mode)


def user_can_enter(user: str, path: Path) -> bool:
    """Return True when `user` can reach and write `path` (every parent traversable)."""
    completed = run(Command(argv=as_user(("test", "-w", str(path), "-a", "-x", str(path)), user), timeout_seconds=30))
    return completed.succeeded


@dataclass
class ScratchServer:
    """A PostgreSQL server on `data_dir`, run as `user` with the programs of `bin_dir`.

    `environment` is what the server (and so its `restore_command`) gets; `role` is the role replica connects as.
    """

    data_dir: Path
    user: str
    bin_dir: Path
    port: int
    role: str
    environment: Mapping[str, str] = field(default_factory=dict)
    # Whether a sweep may delete `data_dir` once replica died: only a scratch copy replica made for itself (a
    # verification's), never a target an engineer named.
    removable: bool = False
    # The socket folder, pg_hba.conf and server log live in a private folder beside nothing else.
    work_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX))
        give_to(self.work_dir, self.user)
        (self.work_dir / "pg_hba.conf").write_text("local all all trust\n")
        give_to(self.work_dir / "pg_hba.conf", self.user, 0o600)
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "data_dir": str(self.data_dir),
            "work_dir": str(self.work_dir),
            "bin_dir": str(self.bin_dir),
            "user": self.user,
            "removable": self.removable,
        }
        # A new file, never through a link: the folder is the world-writable temporary one, and the sweep (run as
        # root) trusts what this file names.
        handle = os.open(self.owner_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(owner))

    @property
    def owner_path(self) -> Path:
        """Return the file that names the replica process running this server (see
        `replica.stores.scratch_servers`)."""
        return self.work_dir.with_name(f"{self.work_dir.name}.json")

    @property
    def log_path(self) -> Path:
        return self.work_dir / "server.log"

    def _pg_ctl(self, *arguments: str, timeout: float) -> Command:
        return Command(
            argv=as_user((str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *arguments), self.user),
            environment=dict(self.environment),
            timeout_seconds=timeout + 10,
            stall_seconds=None,
        )

    def options(self) -> dict[str, str]:
        """Return the settings the server starts with (they win over the data directory's configuration files).

        `hot_standby = off`: a hot standby refuses to recover WAL of a primary whose max_connections (and other
        slot counts) exceed its own, and a restored data directory often lacks the source's settings (Debian keeps
        postgresql.conf in /etc). Without hot standby nothing is read before promotion anyway.
        """
        return {
            "port": str(self.port),
            "listen_addresses": "",
            "unix_socket_directories": str(self.work_dir),
            "hba_file": str(self.work_dir / "pg_hba.conf"),
            "archive_mode": "off",
            "hot_standby": "off",
        }

    def start(self) -> None:
        """Start the server and wait until its recovery began (`pg_ctl -w`: without hot standby it accepts no
        connection before promotion; `wait_recovered` waits for that).

        Raises StoreError with the server log's last lines when it does not come up.
        """
        option_text = shlex.join(part for name, value in self.options().items() for part in ("-c", f"{name}={value}"))
        completed = run(
            self._pg_ctl(
                "start",
                "-w",
                "-t",
                str(int(START_TIMEOUT_SECONDS)),
                "-l",
                str(self.log_path),
                "-o",
                option_text,
                timeout=START_TIMEOUT_SECONDS,
            )
        )
        if not completed.succeeded:
            raise StoreError(
                f"scratch PostgreSQL server on {self.data_dir} did not start: "
                f"{self.log_tail() or last_meaningful_line(completed.stderr_tail)}"
            )

    def running(self) -> bool:
        """Return True while the server's postmaster runs."""
        return run(self._pg_ctl("status", timeout=30)).exit_code == 0

    def stop(self) -> None:
        """Stop the server (fast shutdown: a clean checkpoint, the data directory ready to start again)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        completed = run(self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_SECONDS)), timeout=60))
        if not completed.succeeded and self.running():
            run(self._pg_ctl("stop", "-m", "immediate", "-w", timeout=30))
            raise StoreError(f"scratch PostgreSQL server on {self.data_dir} did not stop cleanly: {self.log_tail()}")

    def remove(self) -> None:
        """Remove the server's private folder (socket, log, pg_hba.conf) and the file naming its owner."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.owner_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines of the server log (what PostgreSQL said about its recovery)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """Return an autocommit connection over the server's socket."""
        return psycopg.connect(
            host=str(self.work_dir),
            port=self.port,
            user=self.role,
            dbname=database,
            connect_timeout=10,
            autocommit=True,
            application_name="replica",
        )

    def wait_recovered(self, timeout_seconds: float) -> None:
        """Wait until the server left recovery (it reached its recovery target and was promoted, or replayed every
        archived WAL file); until then it refuses connections (no hot standby), which is waited out. Raises
        StoreError with the server's own words when it stopped instead (the archive ends before the target) or the
        deadline passed."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            if not (self.data_dir / "postmaster.pid").exists() and not self.running():
                raise StoreError(f"the scratch server stopped during recovery: {self.log_tail()}")
            with contextlib.suppress(psycopg.OperationalError), self.connect() as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
            if time.monotonic() > deadline:
                raise StoreError(f"recovery did not finish in {timeout_seconds:g} s: {self.log_tail()}")
            time.sleep(POLL_SECONDS)
