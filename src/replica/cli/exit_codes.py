"""Exit codes of `replica`, in one table (documented in the README)."""

from __future__ import annotations

from replica import errors

OK = 0
FAILED = 1
USAGE = 2
STORAGE_UNREACHABLE = 3
REPOSITORY_MISSING = 4
CREDENTIALS_REFUSED = 5
REPOSITORY_LOCKED = 6
# EX_TEMPFAIL (sysexits.h): the daemon lost the scheduling lead; systemd's Restart= starts it again as a standby.
LEAD_LOST = 75
INTERRUPTED = 130

# Most specific first: the first class the error is an instance of decides.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.ConfigError, USAGE),
    (errors.UsageError, USAGE),
    (errors.TargetNotEmpty, USAGE),
    (errors.StorageUnreachable, STORAGE_UNREACHABLE),
    (errors.StorageThrottled, STORAGE_UNREACHABLE),
    (errors.StorageServerError, STORAGE_UNREACHABLE),
    (errors.ClockSkew, STORAGE_UNREACHABLE),
    (errors.ResticTimeout, STORAGE_UNREACHABLE),
    (errors.BucketMissing, REPOSITORY_MISSING),
    (errors.RepositoryMissing, REPOSITORY_MISSING),
    (errors.WrongPassword, CREDENTIALS_REFUSED),
    (errors.StorageAccessDenied, CREDENTIALS_REFUSED),
    (errors.RepositoryLocked, REPOSITORY_LOCKED),
    (errors.JobBusy, REPOSITORY_LOCKED),
    (errors.LeadLost, LEAD_LOST),
    (KeyboardInterrupt, INTERRUPTED),
    (errors.Interrupted, INTERRUPTED),
    (errors.ReplicaError, FAILED),
)


def exit_code_for(error: BaseException) -> int:
    """Return the exit code for an error replica expects (FAILED for any other ReplicaError)."""
    for error_class, code in EXIT_CODES:
        if isinstance(error, error_class):
            return code
    return FAILED
