"""Benchmark: appending to the verification log and checking it (`replica audit verify`).

    .venv/bin/python benchmarks/audit_log.py [--events 1000000] [--signed] [--cli]

Opens a fresh SQLite catalog in a temporary folder, appends EVENTS verify-like events (figures with RTO, RPO and
three checks, as a real verification writes) in batches, then checks the whole chain the way `replica audit verify`
does. Prints append and check rates in events per second and the process's peak RSS. `--signed` signs every event
with a fresh Ed25519 key (and checks signatures); `--cli` also times the real `replica audit verify` command on the
catalog (start-up included). Target (issue 4): check >= 200,000 events/s. Not part of the test suite: run by hand.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from replica.audit.keys import Signer
from replica.catalog.database import open_catalog
from replica.catalog.events import EventDraft, EventLog

START = datetime(2026, 1, 1, tzinfo=UTC)


def drafts(count: int) -> Iterator[tuple[EventDraft, datetime]]:
    """Yield `count` verify events a minute apart, with the figures a real verification records."""
    for number in range(count):
        figures = {
            "rto_seconds": 12.5 + number % 7,
            "rpo_seconds": 3600.0 + number % 60,
            "recovery_point": (START + timedelta(minutes=number)).isoformat(),
            "checks": [
                {"name": "repository", "passed": True, "critical": True, "detail": "read 10% of 41 packs"},
                {"name": "integrity", "passed": True, "critical": True, "detail": "PRAGMA integrity_check: ok"},
                {"name": "fingerprint", "passed": True, "critical": True, "detail": "3 tables, 120000 rows match"},
            ],
        }
        event = EventDraft(
            "verify",
            "succeeded",
            "daemon@bench",
            job=f"job{number % 100}",
            destination="primary",
            snapshot=f"{number:08x}",
            run_id=number,
            figures=figures,
        )
        yield event, START + timedelta(minutes=number)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--signed", action="store_true", help="sign every event with a fresh Ed25519 key")
    parser.add_argument("--cli", action="store_true", help="also time `replica audit verify` on the catalog")
    parser.add_argument("--smoke", action="store_true", help="2,000 events and the CLI: only proves the script works")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.events, arguments.cli = 2_000, True
    with tempfile.TemporaryDirectory(prefix="replica-audit-bench-") as folder:
        path = Path(folder) / "catalog.sqlite3"
        signer = Signer(Ed25519PrivateKey.generate()) if arguments.signed else None
        log = EventLog(open_catalog(f"sqlite:///{path}"), signer)
        started = time.perf_counter()
        appended = log.append_many(drafts(arguments.events))
        append_seconds = time.perf_counter() - started
        started = time.perf_counter()
        summary = log.check(check_signature=signer.verifier if signer else None)
        check_seconds = time.perf_counter() - started
        assert summary.intact and summary.events == appended, summary.problem
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"events              {appended:>12,}{'  (signed)' if signer else ''}")
        print(f"catalog size        {path.stat().st_size / 1e6:>12,.0f} MB")
        print(f"append              {append_seconds:>12.1f} s   {appended / append_seconds:>10,.0f} events/s")
        print(f"check (in process)  {check_seconds:>12.1f} s   {appended / check_seconds:>10,.0f} events/s")
        if arguments.cli:
            environment = {**os.environ, "REPLICA_CATALOG_URL": f"sqlite:///{path}", "REPLICA_STATE_DIR": folder}
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "replica", "audit", "verify"],
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
            cli_seconds = time.perf_counter() - started
            assert result.returncode == 0, result.stderr
            print(f"replica audit verify{cli_seconds:>12.1f} s   {appended / cli_seconds:>10,.0f} events/s")
        print(f"peak RSS            {rss_mb:>12,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
