"""restic argv builders, the parsing of its `--json` output into frozen dataclasses, and the repository files its
damage reports name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from replica.restic.backup import backup_arguments
from replica.restic.command import Repository
from replica.restic.init import from_repository_environment
from replica.restic.messages import (
    UnexpectedOutput,
    named_repository_files,
    parse_backup_summary,
    parse_snapshots,
)

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


# stderr of restic 0.14 `check --read-data-subset=100%`, `restore --verify` and `dump`, captured from scratch
# repositories with one file damaged at rest (16 bytes flipped mid-pack, a pack deleted, an index or snapshot file
# flipped).
PACK_ID = "94826f2184d5b624ad4f3376e746e638e13d7cba1c1118938413a8c103e4d290"
CHECK_DAMAGED_PACK = (
    f"Pack ID does not match, want {PACK_ID}, "
    "got 3f5bb4f36c87222861ec081a411dca7612ded6673fafde4f1d25172e6f77e1ba\n"
    "Fatal: repository contains errors\n"
)
MISSING_ID = "d4f3152a0cafe0438f1139b30919f584772e874d46a83733b9af14534e869a70"
CHECK_MISSING_PACK = (
    f"pack {MISSING_ID}: does not exist\n"
    "Load(<data/d4f3152a0c>, 3000358, 0) returned error, retrying after 552.330144ms: "
    f"open /tmp/r-missingpack/data/d4/{MISSING_ID}: no such file or directory\n"
    f"pack {MISSING_ID} failed to download: StreamPack: open /tmp/r-missingpack/data/d4/{MISSING_ID}: "
    "no such file or directory\n"
    "Fatal: repository contains errors\n"
)
INDEX_ID = "6169b4fc11d170bb44787fc28f180accccc7c024bbdb12fba3549735eb02ddb2"
CHECK_DAMAGED_INDEX = (
    f"error: error loading index {INDEX_ID}: load <index/6169b4fc11>: invalid data returned\n"
    "Fatal: LoadIndex returned errors\n"
)
CHECK_DAMAGED_SNAPSHOT = "error: load <snapshot/0e773cc428>: invalid data returned\nFatal: repository contains errors\n"
RESTORE_DAMAGED_PACK = "ignoring error for /src1/a.bin: ciphertext verification failed\nFatal: There were 1 errors\n"
DUMP_DAMAGED_PACK = (
    "cannot dump file: decrypting blob f7a1b39287fac873629707a7d3821acddbb536278ec26b8c2539074a06dd87c3 failed: "
    "ciphertext verification failed\n"
)


def test_a_pack_whose_hash_does_not_match_is_named_by_its_wanted_id_in_its_subfolder() -> None:
    assert named_repository_files(CHECK_DAMAGED_PACK) == (f"data/94/{PACK_ID}",)


def test_a_missing_pack_is_named_once_although_restic_names_it_shortened_and_in_full() -> None:
    assert named_repository_files(CHECK_MISSING_PACK) == (f"data/d4/{MISSING_ID}",)


def test_a_damaged_index_file_is_named_in_the_index_folder() -> None:
    assert named_repository_files(CHECK_DAMAGED_INDEX) == (f"index/{INDEX_ID}",)


def test_a_snapshot_file_named_by_a_shortened_id_stays_a_prefix() -> None:
    assert named_repository_files(CHECK_DAMAGED_SNAPSHOT) == ("snapshots/0e773cc428",)


@pytest.mark.parametrize("stderr", [RESTORE_DAMAGED_PACK, DUMP_DAMAGED_PACK, "Fatal: repository contains errors\n"])
def test_restore_and_dump_name_no_repository_file_only_blobs_or_paths_of_the_snapshot(stderr: str) -> None:
    # A blob id is not a file of the repository: the caller then looks at every file.
    assert named_repository_files(stderr) == ()


def test_lock_files_and_words_like_packs_are_not_named() -> None:
    stderr = (
        "Load(<lock/0a1b2c3d4e>, 0, 0) returned error, retrying after 1s: connection reset\n"
        "read 100.0% of data packs\ncheck all packs\n"
    )

    assert named_repository_files(stderr) == ()
