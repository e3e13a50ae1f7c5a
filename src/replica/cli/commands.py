"""One handler per subcommand: call the action, print its result, return the exit code.

The actions that do work are imported by their handlers: every command pays for its own imports only, and the
reading commands (`status`, `runs`, ...) start without the modules of backup, verify, restore and prune.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from replica.cli.collector import collector_paused
from replica.cli.exit_codes import FAILED, OK, USAGE, exit_code_for
from replica.cli.json_text import indented_json
from replica.cli.render import status_table_of, table
from replica.config.durations import format_duration
from replica.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from replica.actions.context import Context
    from replica.actions.prune import PruneOutcome
    from replica.actions.verify import VerifyOutcome


def _print_json(document: Any) -> None:
    print(indented_json(document))


def init(context: Context, arguments: argparse.Namespace) -> int:
    """Create the repositories of a job."""
    from replica.actions.init import run_init

    run_init(context, arguments.job)
    return OK


def backup(context: Context, arguments: argparse.Namespace) -> int:
    """Back up and copy; exit 1 unless every destination holds the snapshot."""
    from replica.actions.backup import run_backup

    outcome = run_backup(context, arguments.job)
    print(
        f"backup of '{outcome.job}': snapshot {outcome.snapshot_id} (run {outcome.run_id}), "
        f"{outcome.bytes_processed} bytes read, {outcome.bytes_added} added"
    )
    for copy in outcome.copies:
        print(
            f"  copy to '{copy.destination}': "
            + (f"snapshot {copy.snapshot_id}" if copy.error is None else f"FAILED: {copy.error}")
        )
    return OK if outcome.succeeded else FAILED


def verify(context: Context, arguments: argparse.Namespace) -> int:
    """Verify a snapshot; exit 1 when a critical check failed (a data-loss report is written)."""
    from replica.actions.verify import run_verify

    if arguments.all_destinations:
        return _verify_all(context, arguments)
    outcome = run_verify(context, arguments.job, arguments.destination, arguments.snapshot)
    _print_verification(outcome)
    return OK if outcome.passed else FAILED


def _verify_all(context: Context, arguments: argparse.Namespace) -> int:
    from replica.actions.equivalence import run_verify_all

    everywhere = run_verify_all(context, arguments.job, arguments.snapshot)
    for outcome in everywhere.verified:
        _print_verification(outcome)
    for destination, reason in everywhere.failures.items():
        print(f"verification of '{everywhere.job}' in '{destination}': FAILED: {reason}")
    if everywhere.passed:
        print(
            f"all {len(everywhere.verified)} destinations restore recovery point {everywhere.original_id} "
            "to the same backup-time fingerprint: the copies are equivalent"
        )
        return OK
    failed = sorted({*everywhere.failures, *(o.destination for o in everywhere.verified if not o.passed)})
    print(f"copies of recovery point {everywhere.original_id} NOT equivalent; failed: {', '.join(failed)}")
    return FAILED


def _print_verification(outcome: VerifyOutcome) -> None:
    verdict = "PASSED" if outcome.passed else "INCONCLUSIVE" if outcome.failure == "inconclusive" else "FAILED"
    print(
        f"verification of '{outcome.job}' snapshot {outcome.snapshot_id} in '{outcome.destination}' "
        f"(run {outcome.run_id}): {verdict}"
    )
    for check in outcome.checks:
        mark = "ok  " if check.passed else ("FAIL" if check.critical else "warn")
        print(f"  [{mark}] {check.name}: {check.detail}")
    if outcome.inconclusive_attempts:
        print(
            f"  {outcome.inconclusive_attempts} attempt(s) inconclusive: restic reported damage that the stored "
            "files do not have (re-downloaded and hashed)"
        )
    if outcome.rto_seconds is not None:
        print(f"  measured RTO: {format_duration(outcome.rto_seconds)}")
    if outcome.report_path is not None:
        print(f"  data-loss report {outcome.report_id}: {outcome.report_path}")


def restore(context: Context, arguments: argparse.Namespace) -> int:
    """Restore into a named target; refuses data without --force; --dry-run only prints the plan."""
    from replica.actions.point_in_time import is_physical
    from replica.actions.restore import plan_restore, run_restore

    if is_physical(context, arguments.job):
        return _restore_point_in_time(context, arguments)
    plan, expected = plan_restore(
        context,
        arguments.job,
        arguments.to,
        snapshot_id=arguments.snapshot,
        at=arguments.at,
        destination_name=arguments.destination,
        force=arguments.force,
    )
    if arguments.dry_run:
        return _print_dry_run(plan.describe(), refused=plan.refused)
    outcome = run_restore(context, plan, expected)
    print(
        f"restored snapshot {plan.snapshot_id} of '{plan.job}' to {plan.target.description} "
        f"in {format_duration(outcome.duration_seconds)} (run {outcome.run_id})"
    )
    if outcome.replaced:
        print(f"  the previous data was kept as {outcome.replaced}")
    return OK


def _print_dry_run(lines: list[str], *, refused: bool) -> int:
    """Print a restore's plan; return USAGE when it would be refused, else OK."""
    print("dry run, nothing changed:")
    print("\n".join(f"  {line}" for line in lines))
    return USAGE if refused else OK


def _restore_point_in_time(context: Context, arguments: argparse.Namespace) -> int:
    from replica.actions.point_in_time import describe_start, plan_point_in_time, run_point_in_time

    plan = plan_point_in_time(
        context,
        arguments.job,
        arguments.to,
        at=arguments.at,
        snapshot_id=arguments.snapshot,
        destination_name=arguments.destination,
        force=arguments.force,
    )
    if arguments.dry_run:
        return _print_dry_run(plan.describe(), refused=plan.refused)
    outcome = run_point_in_time(context, plan)
    print(
        f"restored '{plan.job}' from base backup {plan.snapshot_id} to {plan.target.description} "
        f"in {format_duration(outcome.duration_seconds)} (run {outcome.run_id}): {outcome.recovery}"
    )
    if outcome.replaced:
        print(f"  the previous content was kept as {outcome.replaced}")
    if plan.target.path is not None:
        print(f"  {describe_start(plan.target.path)}")
    print(f"  start it with: {outcome.start_command}")
    return OK


def prune(context: Context, arguments: argparse.Namespace) -> int:
    """Apply retention (or show it with --dry-run); exit non-zero when a destination could not be pruned: with
    the code of its error (6 when locked) when every failed destination failed alike, else 1."""
    from replica.actions.prune import run_prune

    outcome = run_prune(context, arguments.job, dry_run=arguments.dry_run, destination_name=arguments.destination)
    documents: list[dict[str, Any]] = [
        {
            "destination": destination.destination,
            "run_id": destination.run_id,
            "error": destination.error,
            # A physical job's WAL: from which segment everything is kept, and the older files removed.
            "wal": {"kept_from": destination.wal.keep_from, "removed": destination.wal.expired}
            if destination.wal
            else None,
            "snapshots": [
                {
                    "snapshot_id": snapshot.snapshot_id,
                    "taken_at": snapshot.taken_at.isoformat(),
                    "action": "keep" if snapshot in destination.decision.keep else "remove",
                    "reasons": destination.decision.reasons[snapshot.snapshot_id],
                }
                for snapshot in sorted(
                    [*destination.decision.keep, *destination.decision.remove],
                    key=lambda snapshot: snapshot.taken_at,
                    reverse=True,
                )
            ],
        }
        for destination in outcome.destinations
    ]
    if arguments.json:
        _print_json({"job": outcome.job, "dry_run": outcome.dry_run, "destinations": documents})
        return _prune_exit_code(outcome)
    if outcome.dry_run:
        print("dry run, nothing changed:")
    for document in documents:
        print(
            f"destination '{document['destination']}'" + (f": FAILED: {document['error']}" if document["error"] else "")
        )
        rows = [
            [
                snapshot["snapshot_id"],
                snapshot["taken_at"][:19],
                snapshot["action"].upper(),
                "; ".join(snapshot["reasons"]),
            ]
            for snapshot in document["snapshots"]
        ]
        print(table(["SNAPSHOT", "TAKEN AT", "ACTION", "REASONS"], rows))
    for destination in outcome.destinations:
        if destination.wal is not None:
            print(f"destination '{destination.destination}': {destination.wal.describe(dry_run=outcome.dry_run)}")
            print("".join(f"  REMOVE {name}\n" for name in destination.wal.expired), end="")
    return _prune_exit_code(outcome)


def _prune_exit_code(outcome: PruneOutcome) -> int:
    failed = [destination for destination in outcome.destinations if destination.error]
    codes = {exit_code_for(d.exception) if d.exception is not None else FAILED for d in failed}
    return OK if not failed else codes.pop() if len(codes) == 1 else FAILED


def status(context: Context, arguments: argparse.Namespace) -> int:
    """Print the status table or JSON document."""
    from replica.actions.status import collect_status, collect_views

    # Thousands of jobs make hundreds of thousands of short-lived objects and no cycles (see replica.cli.collector).
    # A one-shot command: the cached facts are read without SQLAlchemy where the catalog allows (replica.catalog.
    # summary_reader), and the table is written straight from what status says of each job, without its document.
    with collector_paused():
        if arguments.json:
            text = indented_json(collect_status(context, read_directly=True))
        else:
            text = status_table_of(collect_views(context, read_directly=True))
    print(text)
    return OK


def snapshots(context: Context, arguments: argparse.Namespace) -> int:
    """List a job's recorded snapshots."""
    from replica.actions.documents import snapshot_documents

    documents = snapshot_documents(context, arguments.job)
    if arguments.json:
        _print_json(documents)
    else:
        print(
            table(
                ["DESTINATION", "SNAPSHOT", "ORIGINAL", "TAKEN AT", "BYTES", "USABLE"],
                [
                    [
                        d["destination"],
                        d["snapshot_id"],
                        d["original_id"],
                        d["taken_at"],
                        str(d["bytes_processed"]),
                        "yes" if d["usable"] else "no",
                    ]
                    for d in documents
                ],
            )
        )
    return OK


def runs(context: Context, arguments: argparse.Namespace) -> int:
    """List runs, newest first; dead `running` runs show as abandoned."""
    from replica.actions.documents import run_documents

    documents = run_documents(context, job=arguments.job, limit=arguments.limit)
    if arguments.json:
        _print_json(documents)
    else:
        print(
            table(
                ["ID", "JOB", "KIND", "DESTINATION", "STATUS", "FAILURE", "PHASE", "SNAPSHOT", "STARTED", "ERROR"],
                [
                    [
                        str(d["id"]),
                        d["job"],
                        d["kind"],
                        d["destination"] or "-",
                        d["status"],
                        d["failure"] or "-",
                        d["phase"],
                        d["snapshot_id"] or "-",
                        d["started_at"][:19],
                        (d["error"] or "")[:80],
                    ]
                    for d in documents
                ],
            )
        )
    return OK


def reports(context: Context, arguments: argparse.Namespace) -> int:
    """List reports, or print one."""
    from replica.actions.documents import report_body, report_documents

    if arguments.action == "show":
        if arguments.report_id is None:
            raise UsageError("reports show needs a report id")
        body = report_body(context, arguments.report_id)
        if arguments.json:
            _print_json(body)
        else:
            from replica.report.dataloss import render_markdown

            print(render_markdown(body))
        return OK
    documents = report_documents(context, arguments.job)
    if arguments.json:
        _print_json(documents)
    else:
        print(
            table(
                ["ID", "JOB", "CREATED", "TITLE", "FILE"],
                [[str(d["id"]), d["job"], d["created_at"][:19], d["title"], d["markdown_path"]] for d in documents],
            )
        )
    return OK


def config_validate(context: Context, arguments: argparse.Namespace) -> int:
    """Report every configuration problem at once; exit 2 when there is any."""
    from replica.config.load import raise_if_problems

    configuration = context.configuration
    plans = context.drill_plans
    if plans.problems:
        raise ConfigError([*configuration.problems, *plans.problems])
    raise_if_problems(configuration)
    print(
        f"configuration valid: {len(configuration.jobs)} jobs, {len(configuration.policies)} policies, "
        f"{len(plans.plans)} drill plans"
    )
    return OK


def demo(context: Context, arguments: argparse.Namespace) -> int:
    """Run the sample job end to end on embedded defaults and print the status table."""
    from replica.actions.demo import run_demo

    passed = run_demo(context, rows=arguments.rows, output=sys.stdout)
    return OK if passed else FAILED
