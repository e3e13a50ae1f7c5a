"""Scratch PostgreSQL servers left behind by a replica process that died (a killed verify or restore): they keep
running as the server's user on a full copy of production data until something stops them.

Each scratch server (`replica.stores.postgresql_server.ScratchServer`) has a private folder `WORK_DIR_PREFIX...` in
the temporary folder and, beside it, `<that name>.json`, written by replica (so owned by replica's user, not the
server's: the server could rewrite a file in its own folder), naming the replica process, host, data directory and
programs. The sweep of `run-due`, the daemon and `reconcile` reads these files. No psycopg here: every tick pays
for this module's import.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replica.errors import last_meaningful_line
from replica.execute import Command, as_user, run

logger = logging.getLogger(__name__)

WORK_DIR_PREFIX = "replica-pgserver-"
STOP_TIMEOUT_SECONDS = 60.0


def stop_abandoned_servers(is_alive: Callable[[int], bool], directory: Path | None = None) -> list[Path]:
    """Stop the scratch servers of this host whose replica process died (a killed verify or restore left them
    running on a copy of production data), and remove their data directory and private folder; return those data
    directories. `directory` is where the owners' files are (default: the temporary folder).

    Never raises: a server that does not stop keeps its data directory and its file, for the next sweep.
    """
    stopped = []
    for path in sorted((directory or Path(tempfile.gettempdir())).glob(f"{WORK_DIR_PREFIX}*.json")):
        owner = _read_owner(path)
        if owner is None or owner["host"] != socket.gethostname() or is_alive(int(owner["pid"])):
            continue
        data_dir, work_dir, user = Path(owner["data_dir"]), Path(owner["work_dir"]), str(owner["user"])
        running_socket = _socket_directory(data_dir)
        if running_socket is not None and running_socket != work_dir:
            # A server runs there, but not replica's scratch server (it listens in replica's private folder): an
            # engineer started a restored cluster, or restored again into the same place. Not ours to stop.
            logger.warning("left the PostgreSQL server on %s alone: it is not the scratch server of %s", data_dir, path)
            path.unlink(missing_ok=True)
            continue
        if running_socket is not None:
            # Immediate: nothing in a scratch copy needs a checkpoint.
            pg_ctl = (str(Path(owner["bin_dir"]) / "pg_ctl"), "-D", str(data_dir), "stop", "-m", "immediate", "-w")
            completed = run(Command(argv=as_user(pg_ctl, user), timeout_seconds=STOP_TIMEOUT_SECONDS))
            if not completed.succeeded and _socket_directory(data_dir) == work_dir:
                logger.warning(
                    "the abandoned scratch PostgreSQL server on %s did not stop: %s",
                    data_dir,
                    last_meaningful_line(completed.stderr_tail),
                )
                continue
        if owner.get("removable") is True:
            shutil.rmtree(data_dir, ignore_errors=True)
            logger.warning("stopped the scratch server of dead process %s and removed %s", owner["pid"], data_dir)
        else:
            # A target an engineer named: what the dead restore left is theirs to look at or remove.
            logger.warning(
                "stopped the scratch server of dead process %s; the unfinished restore in %s is left in place",
                owner["pid"],
                data_dir,
            )
        shutil.rmtree(work_dir, ignore_errors=True)
        path.unlink(missing_ok=True)
        stopped.append(data_dir)
    return stopped


def _socket_directory(data_dir: Path) -> Path | None:
    """Return the socket folder of the server running on `data_dir` (line 5 of its postmaster.pid), or None when
    none runs there."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return Path(lines[4]) if len(lines) > 4 and lines[4] else None


def _read_owner(path: Path) -> dict[str, Any] | None:
    """Return an owner's file written by this user (a file another user wrote names nothing to remove), or None."""
    try:
        status = path.lstat()
        if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid():
            return None
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    needed = ("pid", "host", "data_dir", "work_dir", "bin_dir", "user")
    return owner if isinstance(owner, dict) and all(name in owner for name in needed) else None
