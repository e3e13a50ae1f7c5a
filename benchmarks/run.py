"""List the benchmarks, or run one or all of them.

    .venv/bin/python benchmarks/run.py                  # list the scenarios
    .venv/bin/python benchmarks/run.py NAME [OPTIONS]   # run one (OPTIONS are passed on, e.g. --runs 5)
    .venv/bin/python benchmarks/run.py all [--smoke]    # run every scenario one after the other

Each scenario is a script of its own in this folder that prints a Markdown table; run them one at a time on a
quiet machine (they compare wall times, and two at once share the cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
# Name -> what it compares. The order is issue 7's (scenarios 1 to 7), then the older benchmarks, then issues 11
# and 9.
SCENARIOS = {
    "postgresql": "PostgreSQL backup and verify (~1 GB pgbench) vs pg_dump | restic, restic dump | pg_restore",
    "directory": "directory backup (one 1 GiB file; 100,000 files of 4 KiB) vs restic backup",
    "copy_step": "copy of a snapshot to the second destination vs restic copy",
    "small_job": "backup + verify of a tiny SQLite store end to end; restic processes per action",
    "memory": "replica's own peak RSS for 100 MB, 1 GB and 4 GB stores (backup and verify)",
    "catalog_scale": "status and runs --json with 10,000 jobs and 1,000,000 runs, SQLite and PostgreSQL catalogs",
    "daemon_scheduling": "the daemon's scheduling lag and memory with many no-op jobs",
    "audit_log": "appending to and checking a verification log of 1,000,000 events",
    "wal_shipping": "WAL archiving under pgbench load: segments pushed per second, lag, per-push cost vs boto3 and cp",
    "distributed": "daemon --executor celery with 1 and 3 `replica worker` processes: backups completed per minute",
}


def run_scenario(name: str, options: list[str]) -> int:
    """Run one scenario script with `options`; return its exit code."""
    return subprocess.call([sys.executable, str(BENCHMARKS / f"{name}.py"), *options])


def main(arguments: list[str]) -> int:
    if not arguments or arguments[0] in {"-h", "--help", "list"}:
        print(__doc__.strip(), end="\n\n")
        width = max(len(name) for name in SCENARIOS)
        for name, description in SCENARIOS.items():
            print(f"  {name:<{width}}  {description}")
        return 0
    name, options = arguments[0], arguments[1:]
    if name == "all":
        failed = [scenario for scenario in SCENARIOS if run_scenario(scenario, options) != 0]
        if failed:
            print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    if name not in SCENARIOS:
        print(f"run.py: unknown scenario '{name}'; choose one of: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    return run_scenario(name, options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
