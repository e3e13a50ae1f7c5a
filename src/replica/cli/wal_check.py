"""`replica wal-verify JOB` and `replica wal-status JOB`: the WAL chain of every destination, and the lag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import FAILED, OK
from replica.cli.json_text import indented_json
from replica.cli.render import table

if TYPE_CHECKING:
    import argparse

    from replica.actions.context import Context


def add_wal_check_parsers(sub: Any) -> None:
    """Add `wal-verify` and `wal-status` to the command line's subparsers."""
    verify = sub.add_parser(
        "wal-verify",
        help="check the WAL chain of every destination for gaps (exit 1 and a data-loss report for a gap)",
        description="Check, in every destination of a physical PostgreSQL job, that the archived WAL has no gap "
        "from the oldest retained base backup to the newest segment; name the destinations still holding a gap.",
    )
    verify.set_defaults(handler=wal_verify)
    verify.add_argument("job")
    verify.add_argument("--json", action="store_true")
    status = sub.add_parser(
        "wal-status",
        help="replication lag (RPO in seconds) and WAL chain of every destination of a physical job",
        description="Measure and record the replication lag of every destination (an upper bound on the committed "
        "data a restore from it would lose now), with its newest segment and the state of its WAL chain.",
    )
    status.set_defaults(handler=wal_status)
    status.add_argument("job")
    status.add_argument("--json", action="store_true")


def wal_verify(context: Context, arguments: argparse.Namespace) -> int:
    """Check the WAL chains; exit 1 when any destination has a gap (a data-loss report is written)."""
    from replica.actions.wal_chain import chain_documents, run_wal_verify

    outcome = run_wal_verify(context, arguments.job)
    document = {
        "job": outcome.check.job,
        "run_id": outcome.run_id,
        "passed": outcome.check.passed,
        "report_id": outcome.report_id,
        "report_path": str(outcome.report_path) if outcome.report_path else None,
        "destinations": chain_documents(outcome.check.verdicts),
    }
    if arguments.json:
        print(indented_json(document))
    else:
        for verdict in outcome.check.verdicts:
            print(verdict.describe())
        if outcome.report_path:
            print(f"data-loss report {outcome.report_id}: {outcome.report_path}")
    return OK if outcome.check.passed else FAILED


def wal_status(context: Context, arguments: argparse.Namespace) -> int:
    """Print each destination's lag, newest segment and chain; exit 1 when a chain has a gap."""
    from replica.actions.wal_lag import wal_status as collect

    document = collect(context, arguments.job)
    if arguments.json:
        print(indented_json(document))
    else:
        print(f"source at {document['source_insert_lsn']} ({document['measured_at']})")
        rows = [
            [
                d["destination"],
                "-"
                if d["lag_seconds"] is None
                else ("at least " if d["lag_is_lower_bound"] else "") + f"{d['lag_seconds']:.0f} s",
                d["newest_segment"] or "-",
                d["chain"]["state"],
            ]
            for d in document["destinations"]
        ]
        print(table(["DESTINATION", "LAG", "NEWEST SEGMENT", "CHAIN"], rows))
        for d in document["destinations"]:
            if d["chain"]["gaps"]:
                print(d["chain"]["summary"])
    return OK if document["chain_complete"] else FAILED
