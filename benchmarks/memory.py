"""Benchmark (issue 7, scenario 6): replica's own peak RSS for backup and verify as the store grows.

    .venv/bin/python benchmarks/memory.py [--sizes-mib 100,1024,4096] [--stores big-file,many-files,sqlite]
        [--runs 1] [--smoke]

replica streams: it never holds a dump, a file list or a snapshot listing whose size grows with the store, so
its peak RSS must stay flat from 100 MB to 4 GB (target < 150 MB). The probe (`replica_probe.py`) reports
replica's own peak RSS, restic's and the dump tools' excluded. Stores, each at every size:
- `big-file`: a directory store holding one random file of SIZE (bytes through restic, one sampled digest);
- `many-files`: a directory store of SIZE in random files of 64 KiB, 256 to a folder (the walk and the
  restored tree's check: a file list would grow here);
- `sqlite`: a stream store, a SQLite file of SIZE in rows of one 64 KiB random blob (dump streamed through a
  pipe into `restic backup --stdin`, `restic dump` to a file at verify, row-by-row fingerprint).
`status` (one job, no restic) gives the baseline: what importing replica costs before any work. Times are
wall seconds of the whole command (backup includes the copy to the second destination).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from directory import delete_prefix
from harness import Bench, Row, Sample, bench, format_table, standard_arguments, write_random_file

PRIMARY_BUCKET = "bench-memory-primary"
OFFSITE_BUCKET = "bench-memory-offsite"
FILE_BYTES = 64 << 10
FILES_PER_FOLDER = 256
TARGET_MIB = 150.0
STORES = ("big-file", "many-files", "sqlite")


def write_many_files(root: Path, size_bytes: int) -> int:
    """Write `size_bytes` of random 64 KiB files below `root`, FILES_PER_FOLDER to a folder; return the count."""
    count = max(1, size_bytes // FILE_BYTES)
    for number in range(count):
        folder = root / f"folder-{number // FILES_PER_FOLDER:05d}"
        if number % FILES_PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{number:07d}.bin").write_bytes(os.urandom(FILE_BYTES))
    return count


def write_sqlite(path: Path, size_bytes: int) -> int:
    """Write a SQLite file of about `size_bytes` in rows of one random 64 KiB blob; return the row count."""
    rows = max(1, size_bytes // FILE_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        connection.execute(
            "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < ?) "
            "INSERT INTO blobs (payload) SELECT randomblob(?) FROM numbers",
            (rows, FILE_BYTES),
        )
    connection.close()
    return rows


def make_store(root: Path, kind: str, size_bytes: int) -> tuple[dict[str, object], str]:
    """Write a store of `kind` and `size_bytes` below `root`; return its job `store` block and a description."""
    if kind == "big-file":
        write_random_file(root / "big.bin", size_bytes)
        return {"kind": "directory", "path": str(root)}, "directory, 1 file"
    if kind == "many-files":
        count = write_many_files(root, size_bytes)
        return {"kind": "directory", "path": str(root)}, f"directory, {count} files of 64 KiB"
    rows = write_sqlite(root / "store.sqlite3", size_bytes)
    return {"kind": "sqlite", "path": str(root / "store.sqlite3")}, f"sqlite, {rows} rows of 64 KiB"


def measured(scenario: str, run: Callable[[], Sample], runs: int, note: str) -> Row:
    """Return a row of the highest peak RSS (and median time) over `runs` runs of `run`."""
    samples = [run() for _ in range(runs)]
    seconds = sorted(sample.seconds for sample in samples)[len(samples) // 2]
    rss = max(sample.rss_mib for sample in samples if sample.rss_mib is not None)
    return Row(
        scenario=scenario,
        replica_seconds=seconds,
        raw_seconds=None,
        rss_mib=rss,
        restic_processes=max(sample.restic_processes or 0 for sample in samples),
        runs=runs,
        note=f"{note}; {'ok' if rss < TARGET_MIB else 'MISSED'} (< {TARGET_MIB:.0f} MiB)",
    )


def measure_store(instance: Bench, kind: str, size_mib: int, runs: int) -> list[Row]:
    """Back up and verify a fresh store of `kind` and `size_mib`; remove it and its repositories afterwards."""
    job = f"{kind}-{size_mib}"
    data = instance.root / "data" / job
    store, description = make_store(data, kind, size_mib << 20)
    os.sync()  # the store's dirty pages would otherwise be written back during the first measured command
    instance.write_job(job, store, [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)])
    instance.replica("init", job)
    rows = [
        measured(f"{kind} {size_mib} MiB: backup", lambda: instance.replica("backup", job), runs, description),
        measured(f"{kind} {size_mib} MiB: verify", lambda: instance.replica("verify", job), runs, description),
    ]
    print(f"  {job}: backup {rows[0].rss_mib:.0f} MiB, verify {rows[1].rss_mib:.0f} MiB", file=sys.stderr)
    for bucket in (PRIMARY_BUCKET, OFFSITE_BUCKET):
        delete_prefix(instance, bucket, job)
    (instance.jobs_dir / f"{job}.yaml").unlink()
    _remove_tree(data)
    return rows


def _remove_tree(root: Path) -> None:
    for directory, folders, files in os.walk(root, topdown=False):
        for name in files:
            os.unlink(os.path.join(directory, name))
        for name in folders:
            os.rmdir(os.path.join(directory, name))
    os.rmdir(root)


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.set_defaults(runs=1)
    parser.add_argument("--sizes-mib", default="100,1024,4096", help="store sizes in MiB, comma-separated")
    parser.add_argument("--stores", default=",".join(STORES), help=f"store kinds among {', '.join(STORES)}")
    arguments = parser.parse_args()
    sizes = [4] if arguments.smoke else [int(size) for size in arguments.sizes_mib.split(",")]
    kinds = [kind.strip() for kind in arguments.stores.split(",")]
    unknown = set(kinds) - set(STORES)
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    runs = 1 if arguments.smoke else arguments.runs
    table: list[Row] = []
    with bench() as instance:
        instance.write_job(
            "baseline",
            {"kind": "directory", "path": str(instance.root / "bin")},
            [("primary", PRIMARY_BUCKET), ("offsite", OFFSITE_BUCKET)],
        )
        table.append(measured("status (baseline)", lambda: instance.replica("status"), 3, "imports only, no restic"))
        for kind in kinds:
            for size in sizes:
                table.extend(measure_store(instance, kind, size, runs))
    print(format_table("Memory: replica's own peak RSS as the store grows", table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
