"""`replica` command line. Known errors print one line and exit with the code from `exit_codes`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from replica import __version__, failpoints
from replica.cli import commands, scheduling
from replica.cli.audit import add_audit_parser
from replica.cli.collector import collector_paused, start_up_done
from replica.cli.drill import add_drill_parser
from replica.cli.exit_codes import INTERRUPTED, USAGE, exit_code_for
from replica.cli.recover import add_recover_parser
from replica.cli.wal import add_wal_parsers
from replica.cli.wal_check import add_wal_check_parsers
from replica.cli.web import add_web_parsers
from replica.cli.worker import add_worker_parser
from replica.errors import ConfigError, ReplicaError
from replica.urls import redact_text


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO 8601 time such as 2026-11-26T14:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _zoned_timestamp(text: str) -> datetime:
    """Return an ISO 8601 time that names its offset from UTC. Raises ArgumentTypeError for one without: a restore's
    `--at` typed in local time and read as UTC would bring back the wrong moment (hours of transactions)."""
    value = _timestamp(text)
    if datetime.fromisoformat(text).tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' names no time zone: add Z (UTC) or the offset, such as {text}Z or {text}+02:00"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="replica", description="Backup replication and restore verification.")
    parser.add_argument("--version", action="version", version=f"replica {__version__}")
    parser.add_argument("--debug", action="store_true", help="log every process started and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        subparser.set_defaults(handler=handler)
        return subparser

    init = command("init", commands.init, "create the restic repositories of a job's destinations")
    init.add_argument("job")
    backup = command("backup", commands.backup, "back up a job's store and copy it to every destination")
    backup.add_argument("job")
    verify = command("verify", commands.verify, "test-restore a snapshot and prove the data usable")
    verify.add_argument("job")
    which = verify.add_mutually_exclusive_group()
    which.add_argument("--destination", help="destination to verify (default: the primary)")
    which.add_argument(
        "--all-destinations",
        action="store_true",
        help="restore the same recovery point from every destination and prove the copies equivalent",
    )
    verify.add_argument("--snapshot", help="snapshot id (default: the newest recorded)")
    restore = command(
        "restore",
        commands.restore,
        "restore a snapshot into a new target (a physical PostgreSQL job: to a point in time, --at)",
    )
    restore.add_argument("job")
    restore.add_argument("--to", required=True, help="directory, SQLite file or database name to restore into")
    point = restore.add_mutually_exclusive_group()
    point.add_argument("--snapshot", help="snapshot id (default: the newest recorded)")
    point.add_argument(
        "--at",
        type=_zoned_timestamp,
        help="newest snapshot taken at or before this ISO 8601 time with its zone (Z or +HH:MM); a physical "
        "PostgreSQL job: every transaction committed before it",
    )
    restore.add_argument("--destination", help="destination to restore from (default: the primary)")
    restore.add_argument("--dry-run", action="store_true", help="show what would happen and change nothing")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a target that holds data (its data is renamed aside, never deleted)",
    )
    prune = command("prune", commands.prune, "apply the policy's retention in every destination of a job")
    prune.add_argument("job")
    prune.add_argument("--destination", help="only this destination")
    prune.add_argument("--dry-run", action="store_true", help="show every decision and its reasons; change nothing")
    prune.add_argument("--json", action="store_true")
    status = command("status", commands.status, "RPO/RTO and state of every job")
    status.add_argument("--json", action="store_true", help="print the documented JSON document")
    snapshots = command("snapshots", commands.snapshots, "recorded snapshots of a job")
    snapshots.add_argument("job")
    snapshots.add_argument("--json", action="store_true")
    runs = command("runs", commands.runs, "recorded runs, newest first")
    runs.add_argument("--job")
    runs.add_argument("--limit", type=int, default=30)
    runs.add_argument("--json", action="store_true")
    reports = command("reports", commands.reports, "data-loss reports; 'reports show ID' prints one")
    reports.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    reports.add_argument("report_id", nargs="?", type=int)
    reports.add_argument("--job")
    reports.add_argument("--json", action="store_true")
    schedule = command("schedule", scheduling.schedule, "every job's next run of backup, verify and prune")
    schedule.add_argument("--json", action="store_true")
    command(
        "run-due",
        scheduling.run_due_command,
        "run whatever is due now according to the catalog, then exit (for cron; safe to overlap)",
    )
    reconcile = command(
        "reconcile",
        scheduling.reconcile,
        "mark dead runs abandoned and make the catalog agree with the repositories after a crash",
    )
    reconcile.add_argument("job", nargs="?", help="only this job (default: every valid job)")
    daemon = command("daemon", scheduling.daemon, "run every job's schedules until SIGTERM")
    daemon.add_argument("--workers", type=_positive_int, default=4, help="runs at a time across jobs (default 4)")
    daemon.add_argument(
        "--grace", type=float, default=30.0, help="seconds running work gets to finish on SIGTERM (default 30)"
    )
    daemon.add_argument(
        "--watchdog-interval",
        type=float,
        default=60.0,
        help="seconds between objective checks and metric refreshes (default 60)",
    )
    daemon.add_argument(
        "--reload-check", type=float, default=5.0, help="seconds between looks for changed job files (default 5)"
    )
    daemon.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    daemon.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics server")
    daemon.add_argument(
        "--reload", action="store_true", help="tell the running daemon to re-read jobs and policies, then exit"
    )
    daemon.add_argument(
        "--executor",
        choices=["local", "celery"],
        default="local",
        help="local: run work in this process (default); celery: send it to `replica worker` processes through "
        "the broker of REPLICA_BROKER_URL",
    )
    config = command("config", commands.config_validate, "check configuration files")
    config.add_argument("action", choices=["validate"])
    demo = command(
        "demo",
        commands.demo,
        "run the sample job end to end on embedded defaults (local SeaweedFS, SQLite catalog)",
    )
    demo.add_argument("--rows", type=int, default=2000, help="rows the sample store gains on this run")
    add_audit_parser(sub, _timestamp)
    add_drill_parser(sub, _timestamp)
    add_recover_parser(sub, _timestamp)
    add_web_parsers(sub)
    add_wal_parsers(sub)
    add_wal_check_parsers(sub)
    add_worker_parser(sub, _positive_int)
    return parser


# Commands that change or prove data: the configuration they run under is recorded first (when it changed).
COMMANDS_THAT_WORK = frozenset(
    {"init", "backup", "verify", "restore", "prune", "run-due", "reconcile", "drill", "wal-verify"}
)


def _raise_interrupt(signal_number: int, frame: object) -> None:
    # SIGTERM (systemd, cron's timeout, kill) unwinds like Ctrl-C: the run is recorded as failed ("interrupted")
    # and restic is stopped with SIGINT, which releases its lock, instead of dying silently mid-run.
    raise KeyboardInterrupt


def _redact_record(record: logging.LogRecord) -> bool:
    """Redact credentials in a log line (a URL's user info, a DSN's password) before any handler writes it."""
    message = record.getMessage()
    redacted = redact_text(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if failpoints.armed():
        print(
            f"replica: warning: failpoints armed, this process kills itself at {', '.join(sorted(failpoints.armed()))}",
            file=sys.stderr,
        )
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)
    if arguments.debug:
        # replica's own debug lines only: botocore's would print request headers (key ids, signatures).
        logging.getLogger("replica").setLevel(logging.DEBUG)
    with collector_paused():
        # Imported here, not at the top: the modules of the catalog and the configuration are most of start-up
        # (~0.4 s), loaded with the collector paused and then frozen out of its passes (see replica.cli.collector).
        from replica.actions.context import Context
        from replica.settings import load_settings

        start_up_done()
    try:
        context = Context(load_settings(), progress=lambda message: print(message, file=sys.stderr, flush=True))
        if arguments.command in COMMANDS_THAT_WORK and not getattr(arguments, "dry_run", False):
            # Imported only here: it loads the catalog (SQLAlchemy, ~0.3 s), which `wal-push` runs once per segment
            # without ever needing.
            from replica.actions.configuration import record_configuration_changes

            record_configuration_changes(context)
        code: int = arguments.handler(context, arguments)
        return code
    except ConfigError as error:
        if arguments.debug:
            raise
        for problem in error.problems:
            print(f"replica: error: {redact_text(problem)}", file=sys.stderr)
        return USAGE
    except (ReplicaError, KeyboardInterrupt) as error:
        if isinstance(error, KeyboardInterrupt):
            # Whatever child a stop caught between its start and the code that stops it on any error: SIGINT (restic
            # releases its lock), then SIGKILL.
            from replica.execute import INTERRUPT_GRACE_SECONDS, stop_processes

            stop_processes(INTERRUPT_GRACE_SECONDS)
        if arguments.debug:
            raise
        message = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
        print(f"replica: error: {redact_text(message)}", file=sys.stderr)
        return INTERRUPTED if isinstance(error, KeyboardInterrupt) else exit_code_for(error)
