"""`replica recover PLAN --to ENVIRONMENT_FILE`: restore a drill plan's stores for real into a recovery environment,
with the client notices of the incident."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import OK, USAGE
from replica.cli.json_text import indented_json
from replica.config.durations import format_duration

if TYPE_CHECKING:
    from replica.actions.context import Context


def add_recover_parser(sub: Any, timestamp: Any) -> None:
    """Add `recover` to the command line's subparsers."""
    recover = sub.add_parser(
        "recover",
        help="restore a drill plan's stores for real into a recovery environment and draft client notices",
        description=__doc__,
    )
    recover.set_defaults(handler=recover_command)
    recover.add_argument("plan", help="drill plan naming the service's jobs and their restore order")
    recover.add_argument("--to", required=True, type=Path, help="environment file: a target for every job")
    recover.add_argument(
        "--at",
        type=timestamp,
        help="restore no point taken after this ISO 8601 time (default: each job's newest verified point)",
    )
    recover.add_argument("--incident-at", type=timestamp, help="when the incident happened (default: now)")
    recover.add_argument("--dry-run", action="store_true", help="show the plan and the notices; change nothing")
    recover.add_argument(
        "--force", action="store_true", help="replace targets that hold data (their data is renamed aside)"
    )
    recover.add_argument("--json", action="store_true")


def recover_command(context: Context, arguments: argparse.Namespace) -> int:
    """Plan the recovery, print it; unless --dry-run, carry it out. Exit 2 when a target is refused."""
    from replica.actions.recover import plan_recovery, run_recovery
    from replica.actions.recovery_notices import notice_documents
    from replica.catalog.records import utc_now

    recovery = plan_recovery(
        context, arguments.plan, arguments.to, at=arguments.at, incident_at=arguments.incident_at, force=arguments.force
    )
    if arguments.dry_run:
        if arguments.json:
            document = {**recovery.document(), "dry_run": True, "notices": notice_documents(recovery, utc_now())}
            print(indented_json(document))
        else:
            print("dry run, nothing changed:")
            print("\n".join(f"  {line}" for line in recovery.describe()))
            clients = ", ".join(notice_documents(recovery, utc_now())) or "none"
            print(f"  client notices (written by the real recovery): {clients}")
        return USAGE if recovery.refused else OK
    from replica.actions.configuration import record_configuration_changes

    record_configuration_changes(context)
    if not arguments.json:
        print("\n".join(recovery.describe()))
    outcome = run_recovery(context, recovery)
    if arguments.json:
        restored = [
            {"job": o.plan.job, "run_id": o.run_id, "seconds": o.duration_seconds, "replaced": o.replaced}
            for o in outcome.restores
        ]
        document = {
            **recovery.document(),
            "dry_run": False,
            "restored": restored,
            "total_seconds": outcome.total_seconds,
            "event_seq": outcome.event_seq,
            "notice_files": [str(path) for path in outcome.notices],
        }
        print(indented_json(document))
        return OK
    for restore in outcome.restores:
        kept = f"; the previous data was kept as {restore.replaced}" if restore.replaced else ""
        print(
            f"restored '{restore.plan.job}' to {restore.plan.target.description} in "
            f"{format_duration(restore.duration_seconds)} (run {restore.run_id}){kept}"
        )
    print(f"recovery of '{recovery.plan.name}' done in {format_duration(outcome.total_seconds)}")
    print(f"recorded as verification-log event #{outcome.event_seq}")
    for path in outcome.notices:
        print(f"client notice draft: {path}")
    return OK
