"""`replica drill PLAN | list | review RUN --note TEXT`: exercise a service's recovery and review the exercise."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import FAILED, OK
from replica.cli.json_text import indented_json
from replica.cli.render import table
from replica.config.durations import format_duration
from replica.errors import UsageError

if TYPE_CHECKING:
    from replica.actions.context import Context
    from replica.actions.drill import DrillOutcome


def add_drill_parser(sub: Any, timestamp: Any) -> None:
    """Add `drill` to the command line's subparsers."""
    drill = sub.add_parser(
        "drill",
        help="restore a service's stores to one moment, check them together, write the exercise report",
        description=__doc__,
    )
    drill.set_defaults(handler=drill_command)
    drill.add_argument("plan", metavar="PLAN|list|review", help="a drill plan; 'list' the plans; 'review' a drill")
    drill.add_argument("run_id", nargs="?", type=int, metavar="RUN", help="with 'review': the drill's run id")
    drill.add_argument("--at", type=timestamp, help="cut time: newest points at or before this ISO 8601 time")
    drill.add_argument("--destination", help="drill from this destination of every job")
    drill.add_argument("--note", help="with 'review': the reviewer's note (follow-up actions)")
    drill.add_argument(
        "--clean-room",
        action="store_true",
        help="drill from --destination (a secondary) alone, with --password-file and no catalog lookup",
    )
    drill.add_argument("--password-file", type=Path, help="with --clean-room: the repository password file")
    drill.add_argument(
        "--s3-credentials-file",
        type=Path,
        help="with --clean-room: an AWS credentials file ([default] profile) for the destination's S3",
    )
    drill.add_argument("--json", action="store_true")


def drill_command(context: Context, arguments: argparse.Namespace) -> int:
    """Run a drill (exit 0 passed, 1 failed), list the plans, or review a drill."""
    if arguments.plan == "list":
        return _list(context, arguments)
    if arguments.plan == "review":
        return _review(context, arguments)
    if arguments.run_id is not None or arguments.note is not None:
        raise UsageError("RUN and --note go with 'replica drill review RUN --note TEXT'")
    outcome = _drill(context, arguments)
    if arguments.json:
        print(indented_json(_document(outcome)))
    else:
        _print(outcome)
    return OK if outcome.passed else FAILED


def _drill(context: Context, arguments: argparse.Namespace) -> DrillOutcome:
    from replica.actions.drill import clean_room_drill, drill_plan

    if not arguments.clean_room:
        if arguments.password_file or arguments.s3_credentials_file:
            raise UsageError("--password-file and --s3-credentials-file go with --clean-room")
        return drill_plan(context, arguments.plan, at=arguments.at, destination=arguments.destination)
    if not arguments.destination or not arguments.password_file:
        raise UsageError("--clean-room needs --destination (a secondary) and --password-file")
    from replica.actions.clean_room import CleanRoomCredentials

    credentials = CleanRoomCredentials(arguments.password_file, arguments.s3_credentials_file)
    return clean_room_drill(context, arguments.plan, credentials, destination=arguments.destination, at=arguments.at)


def _document(outcome: DrillOutcome) -> dict[str, Any]:
    import json

    body: dict[str, Any] = json.loads(outcome.report_paths["json"].read_text(encoding="utf-8"))
    return {**body, "reports": {kind: str(path) for kind, path in outcome.report_paths.items()}}


def _print(outcome: DrillOutcome) -> None:
    print(
        f"drill of '{outcome.plan}' (run {outcome.run_id}), cut {outcome.cut.isoformat(timespec='seconds')}: "
        + ("PASSED" if outcome.passed else "FAILED")
    )
    for store in outcome.stores:
        print(
            f"  {store.job} ({store.destination}, snapshot {store.snapshot_id}): "
            f"{'restored' if store.passed else 'FAILED'}, RTO {format_duration(store.rto_seconds)} "
            f"(objective {format_duration(store.rto_objective_seconds)})"
        )
    for check in outcome.cross_checks:
        print(f"  [{'ok  ' if check.passed else 'FAIL'}] {check.name}: {check.detail}")
    print(
        f"  service restored in {format_duration(outcome.service_seconds)} "
        f"(objective {format_duration(outcome.rto_objective_seconds)})"
    )
    for failure in outcome.failures:
        print(f"  failure: {failure}")
    for kind, path in outcome.report_paths.items():
        print(f"  exercise report ({kind}): {path}")


def _review(context: Context, arguments: argparse.Namespace) -> int:
    from replica.actions.drill_report import review_drill

    if arguments.run_id is None or arguments.note is None:
        raise UsageError("usage: replica drill review RUN --note TEXT")
    paths = review_drill(context, arguments.run_id, arguments.note)
    if arguments.json:
        print(indented_json({kind: str(path) for kind, path in paths.items()}))
    else:
        print(f"review noted in the exercise report of drill run {arguments.run_id}: {paths['markdown']}")
    return OK


def _list(context: Context, arguments: argparse.Namespace) -> int:
    from replica.actions.drill_report import list_plans

    documents = list_plans(context)
    if arguments.json:
        print(indented_json(documents))
        return OK
    rows = [
        [
            d["plan"],
            ", ".join(d["jobs"]) or "-",
            format_duration(d["rto_seconds"]),
            d["schedule"] or "-",
            f"run {d['last_run']['run_id']} {d['last_run']['status']}" if d["last_run"] else "never",
        ]
        for d in documents
    ]
    print(table(["PLAN", "JOBS", "RTO", "SCHEDULE", "LAST DRILL"], rows))
    for document in documents:
        for problem in document["problems"]:
            print(f"plan '{document['plan']}' disabled: {problem}")
    return OK
