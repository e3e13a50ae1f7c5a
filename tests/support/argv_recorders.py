"""PATH shims that record every command line replica starts: proof that no secret ever reaches a child's argv
(which `ps` and /proc/PID/cmdline show to every user of the host)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RECORDER = Path(__file__).with_name("argv_recorder")
# Every program replica runs with credentials at hand: restic and the dump and restore tools of each store.
RECORDED_PROGRAMS = (
    "restic",
    "pg_dump",
    "pg_restore",
    "psql",
    "mariadb-dump",
    "mariadb",
    "redis-cli",
    "redis-server",
)


@dataclass(frozen=True)
class ArgvRecorders:
    """A folder of shims, one per program, that log each start's argv to `log` and exec the real program."""

    folder: Path

    @classmethod
    def install(cls, folder: Path, programs: tuple[str, ...] = RECORDED_PROGRAMS) -> ArgvRecorders:
        """Link the recorder under each program's name into `folder` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        for program in programs:
            (folder / program).symlink_to(RECORDER)
        return cls(folder)

    @property
    def log(self) -> Path:
        """The file every shim appends its command line to."""
        return self.folder / "argv.log"

    def path(self, rest: str | None = None) -> str:
        """Return a PATH that finds the shims first, then `rest` (default: this process's PATH)."""
        return f"{self.folder}{os.pathsep}{rest if rest is not None else os.environ.get('PATH', '/usr/bin:/bin')}"

    def lines(self) -> list[str]:
        """Return every command line recorded so far, oldest first."""
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    def programs(self) -> set[str]:
        """Return the names of the programs started so far."""
        return {line.split(" ", 1)[0] for line in self.lines()}
