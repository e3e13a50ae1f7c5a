"""The daemon's files: its pid file (one daemon per state directory; read by `replica daemon --reload`) and the
watch on the job and policy folders that triggers a reload when a file changes."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from replica.actions.locking import process_alive
from replica.errors import UsageError

PID_FILE_NAME = "daemon.pid"


def pid_file_path(state_dir: Path) -> Path:
    """Return where a daemon using `state_dir` writes its pid."""
    return state_dir / PID_FILE_NAME


class PidFile:
    """The pid of the running daemon, claimed at start and removed at stop."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        """Return the pid of a live daemon recorded here, or None (no file, unreadable, or its process died)."""
        try:
            pid = int(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def claim(self) -> None:
        """Write our pid. Raises UsageError when a live daemon already uses this state directory."""
        other = self.read()
        if other is not None and other != os.getpid():
            raise UsageError(f"a daemon already runs with this state directory (pid {other}, {self.path})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n", encoding="utf-8")

    def release(self) -> None:
        """Remove the file if it still holds our pid."""
        with contextlib.suppress(OSError, ValueError):
            if int(self.path.read_text(encoding="utf-8").strip()) == os.getpid():
                self.path.unlink()


def signal_reload(state_dir: Path) -> int:
    """Send SIGHUP to the daemon of `state_dir` and return its pid. Raises UsageError when none runs."""
    path = pid_file_path(state_dir)
    pid = PidFile(path).read()
    if pid is None:
        raise UsageError(f"no daemon runs with this state directory (no live pid in {path})")
    os.kill(pid, signal.SIGHUP)
    return pid


class ConfigurationWatcher:
    """Notices added, removed or modified job and policy files by their names, sizes and modification times."""

    def __init__(self, *folders: Path) -> None:
        self._folders = folders
        self._seen = self._signature()

    def _signature(self) -> frozenset[tuple[str, int, int]]:
        entries = set()
        for folder in self._folders:
            with contextlib.suppress(OSError):
                for path in folder.glob("*.y*ml"):
                    with contextlib.suppress(OSError):
                        status = path.stat()
                        entries.add((str(path), status.st_size, status.st_mtime_ns))
        return frozenset(entries)

    def changed(self) -> bool:
        """Return True once for each change since the last call."""
        current = self._signature()
        if current == self._seen:
            return False
        self._seen = current
        return True
