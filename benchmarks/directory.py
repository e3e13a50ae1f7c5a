"""Benchmark (issue 7, scenario 3): backing up a directory store against raw `restic backup` of the same tree.

    .venv/bin/python benchmarks/directory.py [--runs 3] [--big-mib 1024] [--folders 100] [--files-per-folder 1000]
        [--smoke]

Two trees: (a) one random file of BIG_MIB MiB, (b) FOLDERS x FILES_PER_FOLDER random files of 4 KiB. Every measured
run backs up into fresh repositories (a new job, initialised untimed), so neither side ever finds a parent snapshot
or deduplicated data; an untimed raw backup and copy of each tree comes first (page cache, endpoint warm). Rows
per tree:
- `backup phase`: replica's backup run as its catalog records it (S3 probe, fingerprint of the tree, restic,
  sidecar, catalog) against the raw `cd TREE && restic backup --host bench .`;
- `whole command`: `replica backup` (start-up, backup, copy to the second destination) against the raw backup
  followed by `restic copy` of its snapshot (restic 0.14: destination in -r, source in RESTIC_FROM_REPOSITORY);
- `fingerprint`: replica's walk and sampled digests of the tree alone, in this process (what runs beside restic).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from harness import (
    Bench,
    Row,
    Sample,
    bench,
    format_table,
    newest_runs,
    run_seconds,
    standard_arguments,
    write_random_file,
)

from replica.stores.directory import fingerprint_tree

PRIMARY_BUCKET = "bench-directory-primary"
OFFSITE_BUCKET = "bench-directory-offsite"
SMALL_FILE_BYTES = 4096
TARGET_RATIO = 1.05


@dataclass
class Pair:
    """The samples of one side-by-side measurement: replica's whole command and its two runs, the raw steps."""

    whole: list[Sample] = field(default_factory=list)
    backup_phase: list[float] = field(default_factory=list)
    copy_phase: list[float] = field(default_factory=list)
    raw_backup: list[float] = field(default_factory=list)
    raw_copy: list[float] = field(default_factory=list)
    processes: tuple[str, ...] = ()


def write_small_files(root: Path, folders: int, files_per_folder: int, size_bytes: int = SMALL_FILE_BYTES) -> int:
    """Write folders x files_per_folder random files of `size_bytes` below `root`; return the total bytes."""
    for folder in range(folders):
        directory = root / f"folder-{folder:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        for number in range(files_per_folder):
            (directory / f"file-{number:05d}.bin").write_bytes(os.urandom(size_bytes))
    return folders * files_per_folder * size_bytes


def delete_prefix(instance: Bench, bucket: str, prefix: str) -> None:
    """Remove every object below `prefix/` (the benchmark's repositories would otherwise fill the disk)."""
    client = boto3.client(
        "s3",
        endpoint_url=instance.server.endpoint_url,
        aws_access_key_id=instance.credentials.access_key_id,
        aws_secret_access_key=instance.credentials.secret_access_key,
        region_name="us-east-1",
    )
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        keys: list[Any] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def recorded_seconds(instance: Bench, job: str) -> dict[str, float]:
    """Return {run kind: seconds from start to finish} of the job's newest runs, as `replica runs --json` says."""
    return {kind: run_seconds(run) for kind, run in newest_runs(instance, job).items()}


def raw_init(instance: Bench, prefix: str) -> None:
    """Create the raw side's two repositories (untimed)."""
    for bucket in (PRIMARY_BUCKET, OFFSITE_BUCKET):
        instance.shell("restic init > /dev/null", instance.restic_environment(bucket, prefix))


def raw_backup_and_copy(instance: Bench, tree: Path, prefix: str) -> tuple[float, float]:
    """Run `restic backup` of `tree` (as ".", like replica) then `restic copy` of the snapshot; return both times."""
    primary = instance.restic_environment(PRIMARY_BUCKET, prefix)
    offsite = instance.restic_environment(OFFSITE_BUCKET, prefix)
    snapshot_file = instance.root / "raw-snapshot-id"
    backup = instance.shell(
        f'cd {tree} && restic backup --json --host bench . | grep \'"message_type":"summary"\' '
        f'| sed \'s/.*"snapshot_id":"\\([0-9a-f]*\\)".*/\\1/\' > {snapshot_file}',
        primary,
    )
    copy = instance.shell(
        f"RESTIC_FROM_REPOSITORY=$RESTIC_REPOSITORY RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE "
        f'RESTIC_REPOSITORY={offsite["RESTIC_REPOSITORY"]} restic copy "$(cat {snapshot_file})" > /dev/null',
        primary,
    )
    return backup.seconds, copy.seconds


def measure_backups(instance: Bench, label: str, store: dict[str, object], tree: Path, runs: int) -> Pair:
    """Alternate `replica backup` of a fresh job and the raw backup+copy of `tree` into fresh repositories."""
    pair = Pair()
    # Untimed: the tree's dirty pages reach the disk, its files the page cache, and the endpoint starts its
    # volumes; otherwise whichever side goes first pays for all three.
    os.sync()
    warm_prefix = f"warm-{label}"
    raw_init(instance, warm_prefix)
    raw_backup_and_copy(instance, tree, warm_prefix)
    for bucket in (PRIMARY_BUCKET, OFFSITE_BUCKET):
        delete_prefix(instance, bucket, warm_prefix)
    for index in range(runs):
        job = f"{label}-{index}"
        raw_prefix = f"raw-{label}-{index}"
        instance.write_job(job, store, [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)])
        instance.replica("init", job)
        raw_init(instance, raw_prefix)

        def replica_side(job: str = job) -> None:
            sample = instance.replica("backup", job)
            pair.whole.append(sample)
            pair.processes = sample.restic_commands
            phases = recorded_seconds(instance, job)
            pair.backup_phase.append(phases["backup"])
            pair.copy_phase.append(phases["copy"])

        def raw_side(raw_prefix: str = raw_prefix) -> None:
            backup_seconds, copy_seconds = raw_backup_and_copy(instance, tree, raw_prefix)
            pair.raw_backup.append(backup_seconds)
            pair.raw_copy.append(copy_seconds)

        sides: list[Callable[[], None]] = [replica_side, raw_side]
        for side in sides if index % 2 == 0 else reversed(sides):
            side()
        print(
            f"  {label}: run {index + 1}/{runs}: replica {pair.whole[-1].seconds:.2f}s "
            f"(backup {pair.backup_phase[-1]:.2f}s, copy {pair.copy_phase[-1]:.2f}s), "
            f"raw backup {pair.raw_backup[-1]:.2f}s + copy {pair.raw_copy[-1]:.2f}s",
            file=sys.stderr,
        )
        for bucket in (PRIMARY_BUCKET, OFFSITE_BUCKET):
            delete_prefix(instance, bucket, job)
            delete_prefix(instance, bucket, raw_prefix)
    return pair


def peak_rss(pair: Pair) -> float | None:
    """Return replica's highest own peak RSS over the pair's runs."""
    values = [sample.rss_mib for sample in pair.whole if sample.rss_mib is not None]
    return max(values) if values else None


def backup_rows(label: str, pair: Pair) -> list[Row]:
    """Return the `backup phase` and `whole command` rows of one tree."""
    runs = len(pair.whole)
    rss = peak_rss(pair)
    whole_raw = [backup + copy for backup, copy in zip(pair.raw_backup, pair.raw_copy, strict=True)]
    return [
        Row(
            scenario=f"{label}: backup phase",
            replica_seconds=statistics.median(pair.backup_phase),
            raw_seconds=statistics.median(pair.raw_backup),
            rss_mib=rss,
            restic_processes=None,
            runs=runs,
            target=TARGET_RATIO,
            note="replica's backup run (catalog start→finish) vs raw restic backup",
        ),
        Row(
            scenario=f"{label}: whole command",
            replica_seconds=statistics.median(sample.seconds for sample in pair.whole),
            raw_seconds=statistics.median(whole_raw),
            rss_mib=rss,
            restic_processes=len(pair.processes),
            runs=runs,
            note=f"replica backup (start-up, backup, copy) vs raw backup + copy; restic: {' + '.join(pair.processes)}",
        ),
    ]


def fingerprint_row(label: str, tree: Path, runs: int) -> Row:
    """Return the cost of the directory store's fingerprint of `tree` (walk, count, sampled digests)."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fingerprint = fingerprint_tree(tree, 32)
        seconds.append(time.perf_counter() - started)
    return Row(
        scenario=f"{label}: fingerprint",
        replica_seconds=statistics.median(seconds),
        raw_seconds=None,
        rss_mib=None,
        restic_processes=None,
        runs=runs,
        note=f"alone in process (replica runs it beside restic): {fingerprint['files']} files, "
        f"{len(fingerprint['sample'])} digests",
    )


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the single large file")
    parser.add_argument("--folders", type=int, default=100, help="folders of small files")
    parser.add_argument("--files-per-folder", type=int, default=1000, help="4 KiB files in each folder")
    arguments = parser.parse_args()
    runs = 1 if arguments.smoke else arguments.runs
    big_mib = 8 if arguments.smoke else arguments.big_mib
    folders, per_folder = (4, 50) if arguments.smoke else (arguments.folders, arguments.files_per_folder)
    table: list[Row] = []
    with bench() as instance:
        big_tree = instance.root / "data" / "big"
        write_random_file(big_tree / "random.bin", big_mib << 20)
        many_tree = instance.root / "data" / "many"
        write_small_files(many_tree, folders, per_folder)
        for label, tree in (
            (f"1 file of {big_mib} MiB", big_tree),
            (f"{folders * per_folder} files of 4 KiB", many_tree),
        ):
            short = "big" if tree is big_tree else "many"
            pair = measure_backups(instance, short, {"kind": "directory", "path": str(tree)}, tree, runs)
            table.extend(backup_rows(label, pair))
            table.append(fingerprint_row(label, tree, runs))
    print(format_table("Directory store: backup against raw restic backup", table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
