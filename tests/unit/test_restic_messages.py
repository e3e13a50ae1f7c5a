"""restic argv builders and the parsing of its `--json` output into frozen dataclasses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from replica.restic.backup import backup_arguments
from replica.restic.command import Repository
from replica.restic.init import from_repository_environment
from replica.restic.messages import UnexpectedOutput, parse_backup_summary, parse_snapshots

# Output of restic 0.14 `backup --json --stdin`: status lines, then the summary.
BACKUP_STDOUT = "\n".join(
    [
        '{"message_type":"status","percent_done":0,"total_files":1,"total_bytes":30000005}',
        '{"message_type":"status","percent_done":0.5,"total_files":1,"files_done":0,"bytes_done":15000000}',
        '{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":0,'
        '"dirs_changed":0,"dirs_unmodified":0,"data_blobs":17,"tree_blobs":1,"data_added":30001366,'
        '"total_files_processed":1,"total_bytes_processed":30000005,"total_duration":3.837369111,'
        '"snapshot_id":"adfb8880"}',
    ]
)


def test_backup_arguments_for_a_stream_name_the_stored_file_without_leading_slash() -> None:
    arguments = backup_arguments(
        tags=["replica", "job:billing"], host="db1", stdin_filename="/billing.dump", exclude=["*.tmp"]
    )

    assert arguments == [
        "backup",
        "--host",
        "db1",
        "--tag",
        "replica",
        "--tag",
        "job:billing",
        "--stdin",
        "--stdin-filename",
        "billing.dump",
    ]


def test_backup_arguments_for_a_tree_back_up_the_current_directory_with_excludes() -> None:
    arguments = backup_arguments(tags=["replica"], host="files1", exclude=["*.tmp", "cache/"])

    assert arguments == [
        "backup",
        "--host",
        "files1",
        "--tag",
        "replica",
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache/",
        ".",
    ]


def test_backup_summary_is_parsed_after_status_lines() -> None:
    summary = parse_backup_summary(BACKUP_STDOUT)

    assert summary.snapshot_id == "adfb8880"
    assert (summary.files_new, summary.files_changed, summary.total_files_processed) == (1, 0, 1)
    assert summary.total_bytes_processed == 30000005
    assert summary.data_added == 30001366
    assert summary.total_duration_seconds == pytest.approx(3.837369111)


def test_backup_without_summary_raises_unexpected_output() -> None:
    status_only = "\n".join(BACKUP_STDOUT.splitlines()[:2]) + "\nFatal: unable to save snapshot\n"

    with pytest.raises(UnexpectedOutput, match="no summary"):
        parse_backup_summary(status_only)


def test_snapshots_keep_nanosecond_times_as_aware_datetimes() -> None:
    stdout = json.dumps(
        [
            {
                "time": "2026-11-26T13:04:05.123456789Z",
                "paths": ["/billing.dump"],
                "hostname": "db1",
                "tags": ["replica", "job:billing"],
                "id": "adfb8880c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011",
                "short_id": "adfb8880",
            }
        ]
    )

    (snapshot,) = parse_snapshots(stdout)

    assert snapshot.time == datetime(2026, 11, 26, 13, 4, 5, 123456, tzinfo=UTC)
    assert (snapshot.short_id, snapshot.hostname, snapshot.tags) == ("adfb8880", "db1", ("replica", "job:billing"))
    assert snapshot.paths == ("/billing.dump",)
    assert snapshot.original is None


def test_snapshot_times_keep_a_non_utc_offset() -> None:
    # restic prints the local time of the host that made the snapshot, e.g. +01:00 in Berlin.
    stdout = json.dumps([{"time": "2026-11-26T14:04:05.123456789+01:00", "id": "c0ffee00" * 8, "paths": []}])

    (snapshot,) = parse_snapshots(stdout)

    assert snapshot.time.utcoffset() == timedelta(hours=1)
    assert snapshot.time == datetime(2026, 11, 26, 14, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))


def test_copied_snapshot_carries_its_original_and_a_derived_short_id() -> None:
    stdout = json.dumps(
        [{"time": "2026-11-26T13:04:05Z", "id": "0badc0de" * 8, "original": "adfb8880" * 8, "paths": ["/x"]}]
    )

    (snapshot,) = parse_snapshots(stdout)

    assert snapshot.original == "adfb8880" * 8
    assert snapshot.short_id == "0badc0de"
    assert snapshot.time == datetime(2026, 11, 26, 13, 4, 5, tzinfo=UTC)


def test_from_repository_environment_names_the_source_by_environment_only() -> None:
    source = Repository(name="primary", url="s3:http://127.0.0.1:9000/acme/billing", password=SecretStr("pw-one"))

    assert from_repository_environment(source) == {
        "RESTIC_FROM_REPOSITORY": "s3:http://127.0.0.1:9000/acme/billing",
        "RESTIC_FROM_PASSWORD": "pw-one",
    }
