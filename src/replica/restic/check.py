"""`restic check`: repository structure plus a subset of pack data read back and hashed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from replica.errors import RepositoryCorrupt
from replica.execute import Cancellation, run
from replica.restic.command import Repository, Restic, classify_failure

ERROR_LINE = re.compile(r"does not match|error|damaged|invalid|missing", re.I)


@dataclass(frozen=True)
class CheckReport:
    """The outcome of `restic check`: passed or not, and what it said about damage."""

    passed: bool
    detail: str
    # The repository files restic named in its damage report (see RepositoryCorrupt.suspects).
    suspects: tuple[str, ...] = ()


def check_repository(
    restic: Restic, repository: Repository, *, read_data_subset: str, cancellation: Cancellation | None = None
) -> CheckReport:
    """Check the repository without locking it and return the report.

    Damage found is a failed report naming the suspect files, not an exception; any other failure (wrong password,
    unreachable, timeout) raises the classified ResticError; Cancelled when `cancellation` stopped the check.
    """
    completed = run(
        restic.command(repository, ["check", "--no-lock", f"--read-data-subset={read_data_subset}"], long_running=True),
        cancellation=cancellation,
    )
    if completed.succeeded:
        return CheckReport(True, f"structure and {read_data_subset} of pack data read back without errors")
    error = classify_failure(completed, repository.name)
    if isinstance(error, RepositoryCorrupt):
        lines = [line.strip() for line in completed.stderr_tail.splitlines() if ERROR_LINE.search(line)]
        return CheckReport(False, "; ".join(lines[:3]) or error.detail, error.suspects)
    raise error
