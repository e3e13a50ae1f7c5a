"""Benchmark: the daemon's scheduling lag and memory with many jobs whose work is a no-op.

    .venv/bin/python benchmarks/daemon_scheduling.py [--jobs 10000] [--seconds 90] [--interval 30] [--jitter 0]

Writes N job files (directory stores, two destinations, `backup: every INTERVALs`) and a policy into a temporary
folder, opens a fresh SQLite catalog, and runs the real `Daemon` (APScheduler, worker pool, watchdog tick, reload
watch) for SECONDS with a no-op in place of backup/verify/prune. Prints the lag between each run's due time and its
start (p50/p95/p99/max; the first round, when every job is due at once at start, is reported apart), how long the
daemon took to place every job from the catalog, and the process's peak RSS. Targets (issue 3): p99 lag < 1 s, RSS
< 300 MB. Not part of the test suite: run by hand and quote the table.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from replica.actions.context import Context
from replica.actions.scheduled import WorkOutcome
from replica.daemon.scheduler import Daemon, DaemonOptions
from replica.settings import Settings


def write_configuration(root: Path, jobs: int, interval: int, jitter: int) -> None:
    """Write `jobs` job files and one policy under `root`."""
    (root / "jobs").mkdir()
    (root / "policies").mkdir()
    schedule: dict[str, str] = {"backup": f"every {interval}s"}
    if jitter:
        schedule["jitter"] = f"{jitter}s"
    policy = {"name": "bench", "rpo": "1h", "rto": "15m", "schedule": schedule}
    (root / "policies" / "bench.yaml").write_text(yaml.safe_dump(policy))
    for number in range(jobs):
        name = f"job-{number:05d}"
        document = {
            "name": name,
            "store": {"kind": "directory", "path": "/srv/data"},
            "destinations": [
                {"name": "primary", "bucket": "bench-primary", "prefix": name},
                {"name": "offsite", "bucket": "bench-offsite", "prefix": name},
            ],
            "policy": "bench",
        }
        (root / "jobs" / f"{name}.yaml").write_text(yaml.safe_dump(document))


def percentile(values: list[float], fraction: float) -> float:
    """Return the value below which `fraction` of `values` lie."""
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=int, default=30, help="seconds between backups of each job")
    parser.add_argument("--jitter", type=int, default=0, help="jitter seconds (0: every job fires at once)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--watchdog-interval", type=float, default=60, help="seconds between watchdog ticks (status of every job)"
    )
    parser.add_argument("--smoke", action="store_true", help="20 jobs for 5 seconds: only proves the script works")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.jobs, arguments.seconds, arguments.interval = 20, 5.0, 2

    with tempfile.TemporaryDirectory(prefix="replica-bench-") as folder:
        root = Path(folder)
        started = time.monotonic()
        write_configuration(root, arguments.jobs, arguments.interval, arguments.jitter)
        written = time.monotonic() - started
        settings = Settings(state_dir=root / "state", jobs_dir=root / "jobs", policies_dir=root / "policies")
        context = Context(settings)
        runs: list[float] = []

        def no_op(context: Context, job: str, kind: str) -> WorkOutcome:
            runs.append(time.monotonic())
            return WorkOutcome(job, kind, "succeeded", "no-op", 0.0)

        options = DaemonOptions(
            workers=arguments.workers,
            watchdog_interval_seconds=arguments.watchdog_interval,
            reload_check_seconds=5,
        )
        daemon = Daemon(context, options, work=no_op)
        thread = threading.Thread(target=daemon.run, name="daemon")
        placing = time.monotonic()
        placed_at = datetime.now(UTC)
        thread.start()
        while len(runs) < arguments.jobs and time.monotonic() - placing < arguments.seconds:
            time.sleep(0.05)
        first_round = time.monotonic() - placing
        time.sleep(max(arguments.seconds - first_round, 0))
        daemon.stop()
        thread.join(120)
        # The start-up window: the first round (every job due at once) and the interval after it, whose fire
        # times meet the first round's backlog and the first watchdog tick. Steady state is what comes after.
        boundary = placed_at + timedelta(seconds=first_round + arguments.interval)
        first_round_lags = [lag for due, lag in daemon.recent_lags if due <= boundary]
        steady = [lag for due, lag in daemon.recent_lags if due > boundary]

    peak_rss_megabytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("jobs", f"{arguments.jobs}"),
        (
            "schedule",
            f"every {arguments.interval}s, jitter {arguments.jitter}s, {arguments.workers} workers, "
            f"watchdog every {arguments.watchdog_interval:.0f}s",
        ),
        ("job files written in", f"{written:.1f} s"),
        ("first round (all due at start): all started after", f"{first_round:.1f} s"),
        ("start-up window (first round + one interval) lag p50 / p99", _pair(first_round_lags)),
        ("steady-state runs measured", f"{len(steady)}"),
        ("steady-state lag p50 / p95 / p99 / max", _quad(steady)),
        ("peak RSS of the process", f"{peak_rss_megabytes:.0f} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 0


def _pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} s / {percentile(values, 0.99):.3f} s"


def _quad(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values):.3f} / {percentile(values, 0.95):.3f} / "
        f"{percentile(values, 0.99):.3f} / {max(values):.3f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
