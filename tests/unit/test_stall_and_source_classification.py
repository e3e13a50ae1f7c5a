"""The stall limit reaches every restic and dump command; failures are classified by where they happened: a full
restore target, a store that cannot be reached, a store reached whose dump failed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from replica import errors
from replica.config.models import JobConfig, PolicyConfig
from replica.execute import DEFAULT_STALL_SECONDS, Command, Completed
from replica.restic.command import Repository, Restic, classify_failure
from replica.settings import Settings
from replica.stores import build_store
from replica.stores.base import source_error

REPOSITORY = Repository(name="primary", url="s3:http://127.0.0.1:9000/b/r", password=SecretStr("pw"))
RESTORE_NO_SPACE = (
    "ignoring error for /big: write /mnt/small/restored/big: no space left on device\n"
    "ignoring error for /big: write /mnt/small/restored/big: no space left on device\n"
    "Fatal: There were 2 errors"
)


def failed(stderr: str, *, stalled_seconds: float | None = None) -> Completed:
    command = Command(argv=("restic", "--json", "restore"), timeout_seconds=300)
    exit_code = None if stalled_seconds else 1
    return Completed(command, exit_code, "", stderr, 1.0, stalled_seconds is not None, stalled_seconds)


def job_of(store: dict[str, Any]) -> tuple[JobConfig, PolicyConfig]:
    job = JobConfig.model_validate(
        {
            "name": "billing",
            "store": store,
            "destinations": [{"name": "primary", "bucket": "backups-a"}, {"name": "copy", "bucket": "backups-b"}],
            "policy": "standard",
        }
    )
    return job, PolicyConfig.model_validate({"name": "standard", "rpo": "1h", "rto": "15m"})


def test_the_stall_setting_defaults_to_five_minutes_and_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICA_STALL_SECONDS", raising=False)
    assert Settings().stall_limit_seconds == DEFAULT_STALL_SECONDS == 300
    monkeypatch.setenv("REPLICA_STALL_SECONDS", "0")
    assert Settings().stall_limit_seconds is None
    monkeypatch.setenv("REPLICA_STALL_SECONDS", "45")
    assert Settings().stall_limit_seconds == 45


def test_restic_commands_carry_the_stall_limit_and_their_status_lines_are_no_progress() -> None:
    command = Restic(stall_seconds=12).command(REPOSITORY, ["backup", "--stdin"], long_running=True)
    assert command.stall_seconds == 12 and command.output_is_progress is False


def test_dump_commands_carry_the_stall_limit_and_database_restore_tools_have_none(tmp_path: Path) -> None:
    # GIVEN stores built with a 12 s stall limit
    database = tmp_path / "app.sqlite3"
    sqlite3.connect(database).close()
    sqlite_store = build_store(*job_of({"kind": "sqlite", "path": str(database)}), stall_seconds=12)
    postgresql_store = build_store(*job_of({"kind": "postgresql", "database": "app"}), stall_seconds=12)

    # THEN the stream restic reads has the limit, and pg_restore (which waits silently while the server builds an
    # index) has none
    with sqlite_store.prepare_backup(tmp_path / "scratch", "billing") as prepared:
        assert prepared.source.producer is not None and prepared.source.producer.stall_seconds == 12
    target = postgresql_store.named_target("restored")
    consumer = postgresql_store.restore_method(target, "/billing.pgdump").consumer
    assert consumer is not None and consumer.stall_seconds is None


def test_a_stalled_restic_is_a_timeout_that_says_it_made_no_progress() -> None:
    error = classify_failure(failed("", stalled_seconds=2), "primary")
    assert isinstance(error, errors.ResticTimeout) and errors.failure_state(error) == "timeout"
    assert str(error) == "destination 'primary': restic was stopped: made no progress for 2 s"


def test_no_space_is_a_full_target_only_for_a_command_that_writes_one() -> None:
    # A full restore target, even when --verify then reports the truncated file as not matching
    error = classify_failure(failed(RESTORE_NO_SPACE + "\nhash does not match"), "primary", "/mnt/small/restored")
    assert isinstance(error, errors.TargetFull) and errors.failure_state(error) == "target_full"
    assert str(error).startswith("/mnt/small/restored ran out of space: ignoring error for /big: write")
    # A backup whose temporary files filled the local disk is no full restore target
    assert not isinstance(classify_failure(failed(RESTORE_NO_SPACE), "primary"), errors.TargetFull)


@pytest.mark.parametrize(
    "cause",
    [
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?",
        'could not translate host name "db.invalid" to address: Name or service not known',
        "(2003, \"Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)\")",
        "mariadb-dump: Got error: 2005: \"Unknown server host 'db.invalid' (-2)\" when trying to connect",
        "Error 111 connecting to 127.0.0.1:1. Connection refused.",
        "Could not connect to Redis at 127.0.0.1:1: Connection refused",
    ],
)
def test_clients_that_could_not_reach_their_server_make_the_source_unreachable(cause: str) -> None:
    error = source_error("store: cannot connect", cause)
    assert isinstance(error, errors.SourceUnreachable) and errors.failure_state(error) == "source_unreachable"
    assert str(error) == "store: cannot connect"


@pytest.mark.parametrize(
    "cause",
    [
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "x"',
        'pg_dump: error: query failed: ERROR:  permission denied for table "orders"',
        "(1045, \"Access denied for user 'backup'@'localhost' (using password: YES)\")",
        "WRONGPASS invalid username-password pair or user is disabled.",
    ],
)
def test_a_server_that_answered_is_a_failed_dump_not_an_unreachable_source(cause: str) -> None:
    error = source_error("store: failed", cause)
    assert type(error) is errors.StoreError and errors.failure_state(error) == "source_dump_failed"
