"""Running restic against one repository and turning its failures into typed exceptions.

restic 0.14 knows only exit codes 0 (ok), 1 (fatal), 3 (some source data unreadable, snapshot saved) and 130
(interrupted); the richer codes of later releases (10 missing repository, 11 locked, 12 wrong password) are
mapped too, so an upgrade keeps working. With 0.14 the reason behind exit 1 is read from stderr, in one table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from replica import errors
from replica.execute import DEFAULT_STALL_SECONDS, Command, Completed, run
from replica.restic.lock_messages import parse_locked_error
from replica.restic.messages import named_repository_files

EXIT_OK = 0
EXIT_PARTIAL_READ = 3
EXIT_CANCELLED = 130
# Exit codes documented by later restic releases, recognised so an upgrade keeps its meaning.
EXIT_CODE_ERRORS: dict[int, type[errors.ResticError]] = {
    10: errors.RepositoryMissing,
    11: errors.RepositoryLocked,
    12: errors.WrongPassword,
}
# What restic 0.14 prints about damaged data (a check or restore that read it back). Last in the table: a failure
# with a clearer cause (no repository, wrong password) may mention it too.
DAMAGE = re.compile(
    r"ciphertext verification failed|repository contains errors|(Pack ID|hash|ID) does not match|"
    r"pack .* contains \d+ errors|invalid data returned",
    re.I,
)
# Faults of the moment restic retries and logs on its way; a command that then found damage failed on the damage.
RETRIED_FAULTS: tuple[type[errors.ReplicaError], ...] = (
    errors.StorageUnreachable,
    errors.StorageThrottled,
    errors.StorageServerError,
)
# restic 0.14 exits 1 for all of these; the message tells them apart. Checked in order, first match wins.
STDERR_ERRORS: tuple[tuple[re.Pattern[str], type[errors.ReplicaError]], ...] = (
    # First: a restore or dump into a full file system prints the failed write ("write /target/f: no space left on
    # device"), and --verify may then also report the truncated files as not matching, which is no corruption. Only
    # a command that writes a target is classified so (see classify_failure): a backup whose temporary files fill
    # the local disk is not a full restore target.
    (re.compile(r"no space left on device", re.I), errors.TargetFull),
    (re.compile(r"wrong password or no key found", re.I), errors.WrongPassword),
    (re.compile(r"repository is already locked", re.I), errors.RepositoryLocked),
    # Before "unreachable": a skewed or throttled request can end in a connection reset after the S3 error.
    (re.compile(r"RequestTimeTooSkewed|RequestExpired|request time and the server's time", re.I), errors.ClockSkew),
    (
        re.compile(r"SlowDown|Please reduce your request rate|TooManyRequests|503 Service Unavailable", re.I),
        errors.StorageThrottled,
    ),
    (
        re.compile(
            r"InternalError|We encountered an internal error|50[0234] (Internal Server Error|Bad Gateway|Gateway "
            r"Time-?out)|BadGateway|GatewayTimeout",
            re.I,
        ),
        errors.StorageServerError,
    ),
    # Before "repository missing": restic says "unable to open config file" for any failed read of `config`.
    (
        re.compile(
            r"connection refused|no such host|i/o timeout|connection reset|network is unreachable|"
            r"timeout awaiting response headers|TLS handshake timeout|unexpected EOF|: EOF\b",
            re.I,
        ),
        errors.StorageUnreachable,
    ),
    (re.compile(r"NoSuchBucket|bucket does not exist", re.I), errors.BucketMissing),
    (
        re.compile(r"AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Access Denied", re.I),
        errors.StorageAccessDenied,
    ),
    (
        re.compile(r"unable to open config file|Is there a repository at the following location", re.I),
        errors.RepositoryMissing,
    ),
    (DAMAGE, errors.RepositoryCorrupt),
)


@dataclass(frozen=True)
class Repository:
    """One restic repository: a destination's name (for messages), its URL and the environment to open it."""

    name: str
    url: str
    password: SecretStr
    s3_environment: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """Return the variables restic needs to open this repository (secrets included, never logged)."""
        return {
            **self.s3_environment,
            "RESTIC_REPOSITORY": self.url,
            "RESTIC_PASSWORD": self.password.get_secret_value(),
        }


@dataclass(frozen=True)
class Restic:
    """The restic binary, its deadlines and its stall limit (None: no stall detector)."""

    binary: str = "restic"
    timeout_seconds: float = 6 * 3600
    metadata_timeout_seconds: float = 300
    stall_seconds: float | None = DEFAULT_STALL_SECONDS

    def command(
        self,
        repository: Repository,
        arguments: Sequence[str],
        *,
        long_running: bool = False,
        extra_environment: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Command:
        """Return the Command running `restic --json ARGUMENTS` against `repository`.

        `--json` is always passed; the few 0.14 commands that print no JSON (init, copy, check, forget by id)
        ignore it, and replica then relies on their exit code only.
        """
        argv = (self.binary, "--json", *arguments)
        environment = {**repository.environment(), **(extra_environment or {})}
        timeout = self.timeout_seconds if long_running else self.metadata_timeout_seconds
        # Its status lines are no progress: `backup --json` prints one a second even while stuck on the network.
        return Command(
            argv=argv,
            environment=environment,
            timeout_seconds=timeout,
            cwd=cwd,
            stall_seconds=self.stall_seconds,
            output_is_progress=False,
        )

    def run(
        self,
        repository: Repository,
        arguments: Sequence[str],
        *,
        long_running: bool = False,
        extra_environment: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Completed:
        """Run restic and return its outcome when it succeeded.

        Raises a ResticError subclass (or StorageError) classified from the exit code and stderr.
        """
        command = self.command(
            repository, arguments, long_running=long_running, extra_environment=extra_environment, cwd=cwd
        )
        completed = run(command)
        raise_for_restic(completed, repository.name)
        return completed


def classify_failure(completed: Completed, destination: str, target: str | None = None) -> errors.ReplicaError:
    """Return the exception that best describes a failed restic call (never raises).

    `target` names what a restore or dump writes: only then is "no space left on device" a TargetFull.
    """
    detail = errors.last_meaningful_line(_meaningful_stderr(completed.stderr_tail))
    if completed.timed_out:
        if completed.stalled_seconds is not None:
            return errors.ResticTimeout(destination, f"made no progress for {completed.stalled_seconds:g} s")
        return errors.ResticTimeout(destination, f"no result within {completed.command.timeout_seconds:.0f}s")
    if completed.exit_code in EXIT_CODE_ERRORS:
        coded = EXIT_CODE_ERRORS[completed.exit_code]
        return (
            _locked(completed, destination, detail) if coded is errors.RepositoryLocked else coded(destination, detail)
        )
    for pattern, error_class in STDERR_ERRORS:
        if pattern.search(completed.stderr_tail):
            if error_class in RETRIED_FAULTS and DAMAGE.search(completed.stderr_tail):
                # restic logs the network errors it retried on its way: the damage it then found decides (a
                # verification confirms it at rest before anyone is told of it), not the retry.
                error_class = errors.RepositoryCorrupt
            if error_class is errors.RepositoryLocked:
                return _locked(completed, destination, detail)
            if error_class is errors.RepositoryCorrupt:
                return errors.RepositoryCorrupt(destination, detail, named_repository_files(completed.stderr_tail))
            if error_class is errors.TargetFull:
                if target is None:
                    continue
                written = [line for line in completed.stderr_tail.splitlines() if pattern.search(line)]
                return errors.TargetFull(f"{target} ran out of space: {errors.last_meaningful_line(written[-1])}")
            if issubclass(error_class, errors.ResticError):
                return error_class(destination, detail)
            return error_class(f"destination '{destination}': {detail}")
    if completed.exit_code == EXIT_CANCELLED:
        return errors.ResticError(destination, "interrupted")
    return errors.ResticError(destination, detail or f"exit code {completed.exit_code}")


def _locked(completed: Completed, destination: str, detail: str) -> errors.RepositoryLocked:
    """Return RepositoryLocked naming the lock restic ran into, when its message names one."""
    return errors.RepositoryLocked(destination, detail, holder=parse_locked_error(completed.stderr_tail))


def raise_for_restic(completed: Completed, destination: str, target: str | None = None) -> None:
    """Raise the classified exception unless restic exited 0 in time (`target`: see classify_failure)."""
    if not completed.succeeded:
        raise classify_failure(completed, destination, target)


def _meaningful_stderr(stderr: str) -> str:
    # restic's hint lines ("Is there a repository...?") and JSON error objects are less telling than
    # the Fatal line or the underlying cause; prefer a line starting with Fatal when there is one.
    fatal = [line for line in stderr.splitlines() if line.startswith("Fatal:")]
    return fatal[-1] if fatal else stderr
