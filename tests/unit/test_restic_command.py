"""restic failures classified from exit code and stderr, and the Command built for every restic call."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from replica import errors
from replica.execute import Command, Completed
from replica.restic.command import Repository, Restic, classify_failure
from replica.restic.restore import dump_command

PASSWORD = "correct-horse-battery"
REPOSITORY = Repository(
    name="primary",
    url="s3:http://127.0.0.1:9000/acme-backups/restic/billing",
    password=SecretStr(PASSWORD),
    s3_environment={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"},
)
NO_REPOSITORY = (
    "Fatal: unable to open config file: Stat: The specified key does not exist.\n"
    "Is there a repository at the following location?\n"
    "s3:http://127.0.0.1:9000/acme-backups/restic/billing"
)


def failed(stderr: str, exit_code: int | None = 1, *, timed_out: bool = False) -> Completed:
    command = Command(argv=("restic", "--json", "snapshots"), timeout_seconds=300)
    return Completed(command, exit_code, "", stderr, 1.5, timed_out)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("Fatal: wrong password or no key found", errors.WrongPassword),
        (NO_REPOSITORY, errors.RepositoryMissing),
        (
            "Fatal: unable to create lock in backend: repository is already locked exclusively by PID 4242 "
            "on db1 by root (UID 0, GID 0)\nlock was created at 2026-11-26 14:00:00 (1m ago)",
            errors.RepositoryLocked,
        ),
        (
            "Load(<data/3f2a>, 0, 0) returned error: Pack ID does not match, want 3f2a, got 9c1d",
            errors.RepositoryCorrupt,
        ),
        (
            "error for tree 5e6f:\n  tree 5e6f: file data blob not found\nFatal: repository contains errors",
            errors.RepositoryCorrupt,
        ),
        ("Fatal: unable to open config file: Stat: The specified bucket does not exist.", errors.BucketMissing),
        # A persistent 500 InternalError, as restic 0.14 reports it after ~12 s of retries (not a missing repository)
        (
            NO_REPOSITORY.replace("The specified key does not exist.", "We encountered an internal error."),
            errors.StorageServerError,
        ),
        # restic says "unable to open config file" for any failed read of it: a fault of the moment is no missing
        # repository (which would make a verification write a data-loss report)
        (NO_REPOSITORY.replace("The specified key does not exist.", "502 Bad Gateway"), errors.StorageServerError),
        (
            NO_REPOSITORY.replace("The specified key does not exist.", "net/http: timeout awaiting response headers"),
            errors.StorageUnreachable,
        ),
        (NO_REPOSITORY.replace("The specified key does not exist.", "unexpected EOF"), errors.StorageUnreachable),
        # damage found after a retried network error: the damage decides, not the retry
        (
            "Load(<data/3f2a>, 0, 0) returned error, retrying after 552ms: read: connection reset by peer\n"
            "Pack ID does not match, want 3f2a, got 9c1d\nFatal: repository contains errors",
            errors.RepositoryCorrupt,
        ),
        # S3's own "does not match" is about a signature, not damaged data
        (
            "Fatal: The request signature we calculated does not match the signature you provided "
            "(SignatureDoesNotMatch)",
            errors.StorageAccessDenied,
        ),
    ],
)
def test_restic_0_14_exit_1_is_classified_from_stderr(stderr: str, expected: type[Exception]) -> None:
    error = classify_failure(failed(stderr), "primary")

    assert type(error) is expected
    assert "destination 'primary'" in str(error)


def test_connection_refused_is_storage_unreachable_despite_the_repository_hint() -> None:
    stderr = (
        'Fatal: unable to open config file: Stat: Head "http://127.0.0.1:9/acme-backups/config": '
        "dial tcp 127.0.0.1:9: connect: connection refused\n"
        "Is there a repository at the following location?\ns3:http://127.0.0.1:9/acme-backups"
    )

    error = classify_failure(failed(stderr), "primary")

    assert type(error) is errors.StorageUnreachable
    assert str(error).startswith("destination 'primary': Fatal: unable to open config file")


def test_access_denied_is_not_mistaken_for_a_missing_repository() -> None:
    stderr = "Fatal: unable to open config file: Stat: Access Denied.\nIs there a repository at the following location?"

    assert type(classify_failure(failed(stderr), "primary")) is errors.StorageAccessDenied


def test_detail_prefers_the_fatal_line_over_restics_hint_lines() -> None:
    error = classify_failure(failed(NO_REPOSITORY), "primary")

    assert isinstance(error, errors.ResticError)
    assert error.detail == "Fatal: unable to open config file: Stat: The specified key does not exist."


def test_timeout_is_restic_timeout_whatever_stderr_says() -> None:
    error = classify_failure(failed("Fatal: wrong password or no key found", None, timed_out=True), "offsite")

    assert type(error) is errors.ResticTimeout
    assert error.detail == "no result within 300s"


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [(10, errors.RepositoryMissing), (11, errors.RepositoryLocked), (12, errors.WrongPassword)],
)
def test_newer_restic_exit_codes_decide_without_stderr(exit_code: int, expected: type[Exception]) -> None:
    assert type(classify_failure(failed("", exit_code), "primary")) is expected


def test_unknown_exit_code_is_a_generic_restic_error_with_the_last_line() -> None:
    error = classify_failure(failed("reading something\nsomething odd happened\n", 2), "primary")

    assert type(error) is errors.ResticError
    assert str(error) == "destination 'primary': restic failed: something odd happened"


def test_command_always_passes_json_first() -> None:
    command = Restic(binary="/usr/bin/restic").command(REPOSITORY, ["snapshots", "--no-lock"])

    assert command.argv == ("/usr/bin/restic", "--json", "snapshots", "--no-lock")


def test_command_passes_the_password_only_in_the_environment() -> None:
    command = Restic().command(REPOSITORY, ["backup", "."], extra_environment={"RESTIC_FROM_PASSWORD": "other"})

    assert all(PASSWORD not in argument for argument in command.argv)
    assert command.environment["RESTIC_PASSWORD"] == PASSWORD
    assert command.environment["RESTIC_REPOSITORY"] == REPOSITORY.url
    assert command.environment["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert command.environment["RESTIC_FROM_PASSWORD"] == "other"


def test_command_deadline_depends_on_long_running() -> None:
    restic = Restic(timeout_seconds=7200, metadata_timeout_seconds=60)

    assert restic.command(REPOSITORY, ["backup"], long_running=True).timeout_seconds == 7200
    assert restic.command(REPOSITORY, ["snapshots"]).timeout_seconds == 60


def test_a_restore_by_hand_takes_the_shared_lock_and_a_verification_does_not() -> None:
    restic = Restic(binary="/usr/bin/restic")
    by_hand = dump_command(restic, REPOSITORY, "abc12345", "dump.pgfc", shared_lock=True)
    verification = dump_command(restic, REPOSITORY, "abc12345", "dump.pgfc", shared_lock=False)
    assert by_hand.argv == ("/usr/bin/restic", "--json", "dump", "abc12345", "dump.pgfc")
    assert verification.argv == ("/usr/bin/restic", "--json", "dump", "--no-lock", "abc12345", "dump.pgfc")


def test_damage_carries_the_repository_files_restic_named() -> None:
    pack = "37da3b7731a6c7a9fff5d7c9d2f84058cef1fe81e771296cd53099f815866ec2"
    stderr = f"Pack ID does not match, want {pack}, got {'51c101f6' * 8}\nFatal: repository contains errors"

    error = classify_failure(failed(stderr), "primary")

    assert isinstance(error, errors.RepositoryCorrupt)
    assert error.suspects == (f"data/37/{pack}",)
    assert error.state == "corrupt"
