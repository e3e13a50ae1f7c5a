"""restic's lock messages and lock files parsed into Lock records, and the decision to clear stale locks.

The texts are restic 0.14's own: the error a command prints when it runs into a lock (internal/restic/lock.go,
`alreadyLockedError` and `Lock.String`), and what `restic cat lock ID` and `restic list locks` print.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from replica import errors
from replica.execute import Command, Completed
from replica.restic.command import Repository, Restic, classify_failure
from replica.restic.lock_messages import (
    Lock,
    format_age,
    parse_go_duration,
    parse_lock,
    parse_lock_ids,
    parse_locked_error,
)
from replica.restic.locks import StaleLockClearing, clear_stale_locks

NOW = datetime(2026, 11, 27, 12, 35, 0, tzinfo=UTC)
# As restic 0.14 printed it against a repository a SIGTERMed backup had left locked (measured).
SHARED_LOCK_ERROR = (
    "unable to create lock in backend: repository is already locked by PID 11214 on vm by root (UID 0, GID 0)\n"
    "lock was created at 2026-11-27 12:21:31 (6.587176194s ago)\n"
    "storage ID 3ace8952\n"
    "the `unlock` command can be used to remove stale locks\n"
)
EXCLUSIVE_LOCK_ERROR = (
    "Fatal: unable to create lock in backend: repository is already locked exclusively by PID 4242 on db7 by "
    "backup (UID 998, GID 998)\nlock was created at 2026-11-27 11:59:48 (35m12.25s ago)\nstorage ID 0f1e2d3c\n"
)
CAT_LOCK = (
    '{\n  "time": "2026-11-27T12:21:31.827945784Z",\n  "exclusive": false,\n  "hostname": "vm",\n'
    '  "username": "root",\n  "pid": 11214\n}\n'
)
# Any restic call in a test that must not make one fails with "command not found".
NO_RESTIC = Restic(binary="/nonexistent/restic")
REPOSITORY = Repository(name="primary", url="/nonexistent/repository", password=SecretStr("not-a-secret"))


def test_the_error_of_a_command_kept_out_by_a_shared_lock_names_its_holder() -> None:
    lock = parse_locked_error(SHARED_LOCK_ERROR, NOW)

    assert lock == Lock(
        lock_id="3ace8952",
        host="vm",
        pid=11214,
        user="root",
        created_at=NOW - timedelta(seconds=6.587176),
        exclusive=False,
    )


def test_the_age_restic_printed_dates_an_exclusive_lock_not_its_clock_time_of_unknown_zone() -> None:
    lock = parse_locked_error(EXCLUSIVE_LOCK_ERROR, NOW)

    assert lock is not None
    assert (lock.host, lock.pid, lock.user, lock.exclusive, lock.lock_id) == ("db7", 4242, "backup", True, "0f1e2d3c")
    assert lock.created_at == NOW - timedelta(minutes=35, seconds=12.25)
    assert lock.describe(NOW) == (
        "exclusively by pid 4242 on host db7 (user backup) since 2026-11-27T11:59:47Z (35 min ago)"
    )


@pytest.mark.parametrize(
    "stderr",
    [
        "Fatal: repository is already locked",  # restic's message cut off: no holder to name
        "Fatal: unable to open config file: Stat: The specified key does not exist.",
        "",
    ],
)
def test_stderr_without_a_holder_names_no_lock(stderr: str) -> None:
    assert parse_locked_error(stderr, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6.587176194s", 6.587176194), ("35m12.25s", 2112.25), ("1h0m0s", 3600.0), ("850ms", 0.85), ("0s", 0.0)],
)
def test_go_durations_are_read(text: str, seconds: float) -> None:
    duration = parse_go_duration(text)

    assert duration is not None and duration.total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "12"])
def test_what_is_not_a_go_duration_is_none(text: str) -> None:
    assert parse_go_duration(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (35 * 60 + 12, "35 min"),
        (3 * 3600, "3 h"),
        (3 * 3600 + 300, "3 h 5 min"),
        (5 * 86400, "5 days"),
    ],
)
def test_ages_read_as_people_say_them(seconds: int, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text


def test_a_lock_file_as_restic_cat_lock_prints_it() -> None:
    lock = parse_lock(CAT_LOCK, "3ace8952" + "0" * 56)

    assert (lock.host, lock.pid, lock.user, lock.exclusive) == ("vm", 11214, "root", False)
    assert lock.created_at == datetime(2026, 11, 27, 12, 21, 31, 827945, tzinfo=UTC)
    assert lock.matches("3ace8952") and not lock.matches("0f1e2d3c")


def test_list_locks_output_keeps_only_lock_ids() -> None:
    lock_id = "3ace89522e5e8dd479a8e3c1f0f3bd76cf53a98fb0eabddba79217e50dfda57f"

    assert parse_lock_ids(f"{lock_id}\nrepository 1a2b3c4d opened successfully\n\n") == [lock_id]


def test_a_lock_is_stale_here_only_on_this_host_with_its_pid_gone() -> None:
    lock = parse_locked_error(SHARED_LOCK_ERROR, NOW)
    assert lock is not None

    assert lock.stale_here("vm", is_alive=lambda pid: False)
    assert not lock.stale_here("vm", is_alive=lambda pid: pid == 11214)
    # another host's lock is never stale here, whatever its pid means on this host
    assert not lock.stale_here("db7", is_alive=lambda pid: False)


def test_the_locked_error_of_a_failed_command_carries_the_holder_in_one_line() -> None:
    completed = Completed(Command(("restic", "--json", "forget")), 1, "", EXCLUSIVE_LOCK_ERROR, 0.7)

    error = classify_failure(completed, "primary")

    assert isinstance(error, errors.RepositoryLocked) and error.state == "repository_locked"
    assert error.holder is not None and error.holder.host == "db7"
    assert str(error).startswith(
        "destination 'primary': repository is locked exclusively by pid 4242 on host db7 (user backup) since "
    )
    assert str(error).endswith("(35 min ago)") and "\n" not in str(error)


def test_a_lock_of_another_host_is_reported_without_listing_or_unlocking_anything() -> None:
    # GIVEN the lock a failed command named, held by another host; and a restic that cannot run at all
    other_host = parse_locked_error(EXCLUSIVE_LOCK_ERROR, NOW)
    cleared: list[object] = []
    clearing = StaleLockClearing(host="vm", is_alive=lambda pid: False, on_cleared=cleared.append)

    # WHEN the locks are to be cleared, THEN the holder is raised at once: no restic call was needed (one would have
    # failed with "command not found"), nothing was cleared
    with pytest.raises(errors.RepositoryLocked) as raised:
        clear_stale_locks(NO_RESTIC, REPOSITORY, clearing, other_host)
    assert raised.value.holder == other_host
    assert cleared == []


def test_a_lock_of_a_live_process_here_is_reported_without_listing_or_unlocking_anything() -> None:
    live = parse_locked_error(SHARED_LOCK_ERROR, NOW)
    cleared: list[object] = []
    clearing = StaleLockClearing(host="vm", is_alive=lambda pid: True, on_cleared=cleared.append)

    with pytest.raises(errors.RepositoryLocked) as raised:
        clear_stale_locks(NO_RESTIC, REPOSITORY, clearing, live)
    assert "by pid 11214 on host vm (user root)" in str(raised.value)
    assert cleared == []
