"""The exception tree of replica.

Every error that replica expects carries a one-line message built from typed arguments; the CLI maps the
class to an exit code in one place (`replica.cli.exit_codes`). Anything outside this tree is a bug and is shown
with a traceback.
"""

from __future__ import annotations


class ReplicaError(Exception):
    """Base of every error replica expects and reports in one line."""


class ConfigError(ReplicaError):
    """A settings, job or policy file is invalid; the message names the file and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems))


class UsageError(ReplicaError):
    """The command line asks for something that cannot be done (unknown job, destination, snapshot)."""


class Interrupted(ReplicaError):
    """Work was stopped on purpose (SIGTERM to the daemon, its grace period over); the run ends `interrupted`."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"interrupted: {what}")


class Cancelled(ReplicaError):
    """A command was stopped early because work running beside it failed; the caller reports that failure."""

    def __init__(self, program: str, reason: str) -> None:
        self.program = program
        self.reason = reason
        super().__init__(f"{program} stopped: {reason}")


class JobBusy(ReplicaError):
    """Another run holds the job (one run per job at a time); the message names it."""


class CatalogError(ReplicaError):
    """The catalog database cannot be used (unknown schema version, unreachable)."""


class ProcessFailed(ReplicaError):
    """An external process exited non-zero or did not finish in time."""

    def __init__(self, program: str, exit_code: int | None, stderr_tail: str, timed_out: bool = False) -> None:
        self.program = program
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out
        last_line = last_meaningful_line(stderr_tail)
        if timed_out:
            message = f"{program} did not finish in time and was stopped"
        else:
            message = f"{program} exited with code {exit_code}"
        super().__init__(f"{message}: {last_line}" if last_line else message)


class ResticError(ReplicaError):
    """restic failed; subclasses say why when the reason is known."""

    def __init__(self, destination: str, detail: str) -> None:
        self.destination = destination
        self.detail = detail
        super().__init__(
            f"destination '{destination}': {self.summary}: {detail}"
            if detail
            else f"destination '{destination}': {self.summary}"
        )

    summary = "restic failed"


class RepositoryMissing(ResticError):
    """The destination's bucket exists but holds no restic repository (run `replica init`)."""

    summary = "no restic repository here (run 'replica init JOB')"


class WrongPassword(ResticError):
    """The repository password does not open the repository."""

    summary = "wrong repository password"


class RepositoryLocked(ResticError):
    """Another process holds an exclusive lock on the repository."""

    summary = "repository is locked"


class RepositoryCorrupt(ResticError):
    """restic reports damaged data in the repository."""

    summary = "repository data is damaged"


class PartialSourceRead(ResticError):
    """restic could not read part of the source (exit 3) but saved a snapshot, which is no recovery point."""

    summary = "some source files could not be read"

    def __init__(self, destination: str, detail: str, snapshot_id: str | None) -> None:
        self.snapshot_id = snapshot_id
        super().__init__(destination, detail)


class ResticTimeout(ResticError):
    """restic did not finish within its deadline (a silent or stalled endpoint)."""

    summary = "restic did not finish in time"


class StorageError(ReplicaError):
    """The object storage behind a destination cannot be used."""


class StorageUnreachable(StorageError):
    """The S3 endpoint refuses, times out or does not answer."""


class BucketMissing(StorageError):
    """The destination's bucket does not exist."""


class StorageAccessDenied(StorageError):
    """The credentials are refused by the S3 endpoint."""


class StoreError(ReplicaError):
    """The protected data store cannot be read, dumped or restored."""


class TargetNotEmpty(ReplicaError):
    """A restore target holds data and `--force` was not given."""


class LogTampered(ReplicaError):
    """The verification log is not what was written: an event was edited, deleted or inserted."""


class VerificationFailed(ReplicaError):
    """At least one critical check of a verification failed."""


def last_meaningful_line(text: str) -> str:
    """Return the last non-blank line of `text`, stripped, or an empty string."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""
