"""Benchmark (issue 7, scenario 4): copying a snapshot to the second destination against raw `restic copy`.

    .venv/bin/python benchmarks/copy_step.py [--runs 3] [--size-mib 1024] [--smoke]

replica has no copy-only command: `replica backup` backs up to the primary destination and then copies the new
snapshot to every other one, recording each copy as its own run. The `copy step` row takes that run's start and
finish from `replica runs --json` (S3 probe of the destination, `restic copy`, finding the copy's id, the
fingerprint sidecar upload and the catalog record) and compares it with the raw
`RESTIC_FROM_REPOSITORY=PRIMARY restic -r OFFSITE copy SNAPSHOT` of the same snapshot size, into fresh
repositories each run (neither side finds data already copied). The cross-check row compares the whole
`replica backup` minus its backup run with the same raw copy: what the copy adds to the command.
"""

from __future__ import annotations

import statistics
import sys

from directory import Pair, measure_backups, peak_rss
from harness import Row, bench, format_table, standard_arguments, write_random_file

TARGET_RATIO = 1.05


def copy_rows(label: str, pair: Pair) -> list[Row]:
    """Return the copy step against raw restic copy, and the whole command minus its backup run."""
    runs = len(pair.whole)
    copy_processes = [command for command in pair.processes[1:]]
    after_backup = [sample.seconds - backup for sample, backup in zip(pair.whole, pair.backup_phase, strict=True)]
    return [
        Row(
            scenario=f"{label}: copy step",
            replica_seconds=statistics.median(pair.copy_phase),
            raw_seconds=statistics.median(pair.raw_copy),
            rss_mib=peak_rss(pair),
            restic_processes=len(copy_processes),
            runs=runs,
            target=TARGET_RATIO,
            note=f"replica's copy run (catalog start→finish) vs raw restic copy; restic: {' + '.join(copy_processes)}",
        ),
        Row(
            scenario=f"{label}: command minus backup run",
            replica_seconds=statistics.median(after_backup),
            raw_seconds=statistics.median(pair.raw_copy),
            rss_mib=None,
            restic_processes=None,
            runs=runs,
            note="whole `replica backup` wall time minus its backup run (start-up, copy, exit) vs raw restic copy",
        ),
    ]


def main() -> int:
    parser = standard_arguments(__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the random file in the snapshot")
    arguments = parser.parse_args()
    runs = 1 if arguments.smoke else arguments.runs
    size_mib = 8 if arguments.smoke else arguments.size_mib
    with bench() as instance:
        tree = instance.root / "data" / "big"
        write_random_file(tree / "random.bin", size_mib << 20)
        pair = measure_backups(instance, "copy", {"kind": "directory", "path": str(tree)}, tree, runs)
    print(format_table("Copy to the second destination against raw restic copy", copy_rows(f"{size_mib} MiB", pair)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
