"""The pure parts of physical PostgreSQL backups and point-in-time restores: what pg_basebackup prints, the recovery
settings written into a restored data directory, commands run as another user."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replica.errors import StoreError
from replica.execute import as_user
from replica.stores.postgresql_physical import (
    conf_string,
    parse_backup_points,
    strip_recovery_settings,
    wal_fetch_command,
    write_recovery_settings,
)

VERBOSE = """pg_basebackup: initiating base backup, waiting for checkpoint to complete
pg_basebackup: checkpoint completed
pg_basebackup: write-ahead log start point: 0/2000028 on timeline 3
pg_basebackup: write-ahead log end point: 1/A0000100
pg_basebackup: base backup completed
"""


def test_the_backup_points_are_read_from_pg_basebackups_verbose_output() -> None:
    assert parse_backup_points(VERBOSE) == {"start_lsn": "0/2000028", "timeline": 3, "end_lsn": "1/A0000100"}


def test_output_without_the_points_fails_the_backup() -> None:
    with pytest.raises(StoreError, match="start and end points"):
        parse_backup_points("pg_basebackup: base backup completed\n")


def test_recovery_settings_are_written_then_stripped_leaving_archiving_off(tmp_path: Path) -> None:
    user = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "postgresql.auto.conf").write_text("work_mem = '8MB'\n")
    at = datetime(2026, 11, 27, 14, 3, tzinfo=UTC)
    write_recovery_settings(tmp_path, user, "replica wal-fetch --job it's %f %p", at)
    text = (tmp_path / "postgresql.auto.conf").read_text()
    assert "restore_command = 'replica wal-fetch --job it''s %f %p'" in text
    assert "recovery_target_time = '2026-11-27T14:03:00+00:00'" in text
    assert "recovery_target_inclusive = off" in text and "recovery_target_action = 'promote'" in text
    assert (tmp_path / "recovery.signal").exists() and (tmp_path / "postgresql.conf").exists()
    # A second restore attempt into the same directory replaces the block instead of adding one.
    write_recovery_settings(tmp_path, user, "other %f %p", None)
    text = (tmp_path / "postgresql.auto.conf").read_text()
    assert text.count("restore_command") == 1 and "recovery_target_time =" not in text
    assert (
        strip_recovery_settings(text) == "work_mem = '8MB'\n# replica: a restored cluster does not archive into "
        "its source's WAL archive\narchive_mode = 'off'\n"
    )


def test_conf_strings_double_quotes_and_backslashes() -> None:
    assert conf_string("a'b\\c") == "'a''b\\\\c'"


def test_commands_run_as_another_user_only_when_root_and_different() -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert as_user(["pg_ctl", "start"], me) == ("pg_ctl", "start")
    assert as_user(["pg_ctl", "start"], None) == ("pg_ctl", "start")
    if os.geteuid() == 0:
        assert as_user(["pg_ctl"], "postgres") == ("runuser", "-u", "postgres", "--", "pg_ctl")


def test_the_restore_command_asks_a_named_copy_alone_and_the_primary_first_by_default() -> None:
    # A restore from (or verification of) a copy must work with the primary down and never borrow its WAL.
    assert wal_fetch_command("db", "offsite", only=True).endswith("wal-fetch --job db --only offsite %f %p")
    assert wal_fetch_command("db", "offsite").endswith("wal-fetch --job db --destination offsite %f %p")
    assert wal_fetch_command("db", None).endswith("wal-fetch --job db %f %p")
