"""Run replica's command line in this process and write this process's own peak RSS to a file.

    REPLICA_BENCH_RSS_FILE=/tmp/rss .venv/bin/python benchmarks/replica_probe.py backup JOB

The benchmarks start replica through this probe instead of the `replica` script: the probe reads the peak of
replica's own memory (every thread of it) and none of restic's or the dump tools', which `RUSAGE_CHILDREN` would
mix in. The exit code is replica's.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from replica.cli.main import main


def peak_rss_kib() -> int:
    """Return the peak resident set size of this process since it started this program, in KiB.

    Linux's `VmHWM` belongs to the address space exec made, so it is this program's alone; `ru_maxrss` is not: it
    keeps the peak of the process that spawned us (a benchmark holding a big catalog in memory would show through).
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def write_peak_rss() -> None:
    """Write the peak resident set size of this process, in KiB, to $REPLICA_BENCH_RSS_FILE (when set)."""
    path = os.environ.get("REPLICA_BENCH_RSS_FILE")
    if path:
        Path(path).write_text(str(peak_rss_kib()))


# The guard matters: `audit verify` starts worker processes with `spawn`, which import the main module again.
if __name__ == "__main__":
    try:
        code = main()
    finally:
        write_peak_rss()
    raise SystemExit(code)
