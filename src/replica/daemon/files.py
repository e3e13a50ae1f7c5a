"""The daemon's files: its pid file (one daemon per state directory; read by `replica daemon --reload`) and the
watch on the job and policy folders that triggers a reload when a file changes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from pathlib import Path

from replica.errors import UsageError

PID_FILE_NAME = "daemon.pid"


def pid_file_path(state_dir: Path) -> Path:
    """Return where a daemon using `state_dir` writes its pid."""
    return state_dir / PID_FILE_NAME


class PidFile:
    """The pid of the running daemon, under an exclusive `flock` held for the daemon's whole life.

    The lock, not the pid, says whether a daemon runs: the kernel drops it when the daemon dies however it dies,
    so a stale file never blocks a start, and `--reload` never signals an unrelated process that reused the pid.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def read(self) -> int | None:
        """Return the pid of the daemon holding this file's lock, or None when no daemon holds it."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _pid_in(self.path)  # held: a daemon runs
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            return None
        finally:
            os.close(descriptor)

    def claim(self) -> None:
        """Take the lock and write our pid. Raises UsageError when a daemon already holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            other = _pid_in(self.path)
            raise UsageError(
                f"a daemon already runs with this state directory (pid {other or '?'}, {self.path})"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Remove the file and drop the lock (the kernel drops it anyway if the daemon dies first)."""
        if self._descriptor is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._descriptor)
        self._descriptor = None


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def signal_reload(state_dir: Path) -> int:
    """Send SIGHUP to the daemon of `state_dir` and return its pid. Raises UsageError when none runs."""
    path = pid_file_path(state_dir)
    pid = PidFile(path).read()
    if pid is None:
        raise UsageError(f"no daemon runs with this state directory (no daemon holds {path})")
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
