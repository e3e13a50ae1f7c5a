"""The exception tree of replica.

Every error that replica expects carries a one-line message built from typed arguments; the CLI maps the
class to an exit code in one place (`replica.cli.exit_codes`). Anything outside this tree is a bug and is shown
with a traceback.

Every class also names the *failure state* a run ends in when it raises it (`state`): a short, stable
identifier that `runs`, `status`, the metrics, the reports and the verification log show, so that people and
alert rules can tell "the bucket is gone" from "the endpoint throttles us" without reading messages.
`failure_state` maps any exception to one; FAILURE_STATES lists them all with their meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from replica.restic.lock_messages import Lock

# Every failure state a run can end in, with what it means (README "Failure states" mirrors this table).
FAILURE_STATES: dict[str, str] = {
    "storage_unreachable": "the S3 endpoint refuses connections, times out or does not answer",
    "throttled": "the S3 endpoint kept answering 503 SlowDown after restic's retries",
    "storage_error": "the S3 endpoint kept answering server errors (500 InternalError, 502, 504) after retries",
    "auth_failed": "the S3 endpoint refused the credentials",
    "wrong_password": "the repository password does not open the repository",
    "repository_missing": "the bucket, or the restic repository inside it, does not exist",
    "repository_locked": "another process holds an exclusive lock on the repository",
    "clock_skew": "the S3 endpoint refused requests because this host's clock is off",
    "source_unreachable": "the protected store could not be reached (connection refused, unknown host, no file)",
    "source_dump_failed": "the protected store was reached but its dump or read failed",
    "partial_source_read": "restic could not read part of the source; the snapshot is no recovery point",
    "target_full": "the restore target ran out of space",
    "timeout": "a process did not finish within its deadline, or made no progress for too long",
    "interrupted": "the work was stopped on purpose (SIGTERM, SIGINT)",
    "abandoned": "the process running the work died (kill -9, power loss) and a later sweep found it",
    "corrupt": "data at rest is damaged: a repository file no longer matches its content hash",
    "verification_failed": "a restored copy did not pass its checks (integrity, fingerprint, canary)",
    "inconclusive": "a check failed but the damage could not be confirmed at rest (a transient fault)",
    "busy": "another run held the job",
    "config_invalid": "a settings, job or policy file is invalid",
    "failed": "any other failure (the message says what)",
}
FALLBACK_STATE = "failed"
# The failure states that are evidence about the data of a recovery point: it is damaged at rest, did not restore
# to what was backed up, or its repository cannot be opened at all. Only these make a data-loss report; every other
# state (the endpoint unreachable, throttling or failing, credentials refused, a deadline, a full scratch disk, a
# stop on purpose, a scratch database server down...) says nothing about whether data was lost: the run fails and
# alerts, but no report blames the data.
DATA_LOSS_STATES = frozenset({"corrupt", "verification_failed", "wrong_password", "repository_missing"})


class ReplicaError(Exception):
    """Base of every error replica expects and reports in one line."""

    state: ClassVar[str] = FALLBACK_STATE


class ConfigError(ReplicaError):
    """A settings, job or policy file is invalid; the message names the file and field."""

    state: ClassVar[str] = "config_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems))


class UsageError(ReplicaError):
    """The command line asks for something that cannot be done (unknown job, destination, snapshot)."""


class NotFound(UsageError):
    """A job, destination, snapshot, report or token named by the caller does not exist (the web answers 404)."""


class NotPermitted(UsageError):
    """The caller may not do this here (a web restore outside the web's restore folder; the web answers 403)."""


class Interrupted(ReplicaError):
    """Work was stopped on purpose (SIGTERM to the daemon, its grace period over); the run ends `interrupted`."""

    state: ClassVar[str] = "interrupted"

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

    state: ClassVar[str] = "busy"


class CatalogError(ReplicaError):
    """The catalog database cannot be used (unknown schema version, unreachable)."""


class LeadLost(ReplicaError):
    """The daemon lost the scheduling lead (its lock on the catalog went away) and stopped; its supervisor restarts
    it as a standby."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        super().__init__(f"{daemon} lost the scheduling lead and stopped scheduling; restart it to stand by")


class ProcessFailed(ReplicaError):
    """An external process exited non-zero or did not finish in time."""

    def __init__(
        self,
        program: str,
        exit_code: int | None,
        stderr_tail: str,
        timed_out: bool = False,
        stalled_seconds: float | None = None,
    ) -> None:
        self.program = program
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out or stalled_seconds is not None
        last_line = last_meaningful_line(stderr_tail)
        if stalled_seconds is not None:
            message = f"{program} made no progress for {stalled_seconds:g} s and was stopped"
        elif timed_out:
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

    state: ClassVar[str] = "repository_missing"

    summary = "no restic repository here (run 'replica init JOB')"


class WrongPassword(ResticError):
    """The repository password does not open the repository."""

    state: ClassVar[str] = "wrong_password"

    summary = "wrong repository password"


class RepositoryLocked(ResticError):
    """Another process holds a lock on the repository that the work cannot share; `holder` is that lock when
    restic named it (host, pid, user, age), and the message then names it too."""

    state: ClassVar[str] = "repository_locked"

    summary = "repository is locked"

    def __init__(self, destination: str, detail: str, *, holder: Lock | None = None) -> None:
        self.holder = holder
        super().__init__(destination, holder.describe() if holder is not None else detail)
        if holder is not None:
            # "repository is locked exclusively by pid 4242 on host db7 (user backup) since ... (35 min ago)"
            self.args = (f"destination '{destination}': {self.summary} {self.detail}",)


class RepositoryCorrupt(ResticError):
    """restic reports damaged data in the repository (damage at rest, or in transit: confirm before reporting).

    `suspects` are the repository files restic named, as paths relative to the repository (`data/94/94826f21...`),
    possibly shortened to an id prefix; empty when it named none.
    """

    state: ClassVar[str] = "corrupt"

    summary = "repository data is damaged"

    def __init__(self, destination: str, detail: str, suspects: tuple[str, ...] = ()) -> None:
        self.suspects = suspects
        super().__init__(destination, detail)


class PartialSourceRead(ResticError):
    """restic could not read part of the source (exit 3) but saved a snapshot, which is no recovery point."""

    state: ClassVar[str] = "partial_source_read"

    summary = "some source files could not be read"

    def __init__(self, destination: str, detail: str, snapshot_id: str | None) -> None:
        self.snapshot_id = snapshot_id
        super().__init__(destination, detail)


class ResticTimeout(ResticError):
    """restic did not finish within its deadline or made no progress for too long (a silent or stalled endpoint)."""

    state: ClassVar[str] = "timeout"

    summary = "restic was stopped"


class StorageError(ReplicaError):
    """The object storage behind a destination cannot be used."""


class StorageUnreachable(StorageError):
    """The S3 endpoint refuses, times out or does not answer."""

    state: ClassVar[str] = "storage_unreachable"


class StorageThrottled(StorageError):
    """The S3 endpoint kept answering 503 SlowDown (or 429) after every retry."""

    state: ClassVar[str] = "throttled"


class StorageServerError(StorageError):
    """The S3 endpoint kept answering server errors (500 InternalError, 502, 504) after every retry."""

    state: ClassVar[str] = "storage_error"


class ClockSkew(StorageError):
    """The S3 endpoint refused a request as signed too far from its own time (RequestTimeTooSkewed)."""

    state: ClassVar[str] = "clock_skew"


class BucketMissing(StorageError):
    """The destination's bucket does not exist."""

    state: ClassVar[str] = "repository_missing"


class StorageAccessDenied(StorageError):
    """The credentials are refused by the S3 endpoint."""

    state: ClassVar[str] = "auth_failed"


class StoreError(ReplicaError):
    """The protected data store cannot be read, dumped or restored."""

    state: ClassVar[str] = "source_dump_failed"


class SourceUnreachable(StoreError):
    """The protected store cannot be reached: connection refused, unknown host, missing file or socket."""

    state: ClassVar[str] = "source_unreachable"


class TargetFull(StoreError):
    """The restore target ran out of space (ENOSPC); what was restored there is incomplete."""

    state: ClassVar[str] = "target_full"


class TargetNotEmpty(ReplicaError):
    """A restore target holds data and `--force` was not given."""


class WalConflict(StorageError):
    """A WAL file of that name is already archived with other content: two servers share one archive, or the
    cluster was re-created; pushing over it would destroy the log a restore needs."""


class WalDamaged(StorageError):
    """An archived WAL file no longer matches its digest or fails authentication (damaged or written by another
    key)."""


class LogTampered(ReplicaError):
    """The verification log is not what was written: an event was edited, deleted or inserted."""


class VerificationFailed(ReplicaError):
    """At least one critical check of a verification failed."""

    state: ClassVar[str] = "verification_failed"


def failure_state(error: BaseException) -> str:
    """Return the failure state a run that raised `error` ends in (see FAILURE_STATES); never raises.

    A process that ran out of time is a `timeout` whatever it was; Ctrl-C is `interrupted`; anything replica does
    not expect is `failed`.
    """
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, ProcessFailed) and error.timed_out:
        return "timeout"
    if isinstance(error, ReplicaError):
        return error.state
    return FALLBACK_STATE


def last_meaningful_line(text: str) -> str:
    """Return the last non-blank line of `text`, stripped, or an empty string."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""
