"""`replica worker`: a Celery worker that runs the work the leading daemon sends (`daemon --executor celery`)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import FAILED, OK

if TYPE_CHECKING:
    from replica.actions.context import Context

logger = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 2


def add_worker_parser(sub: Any, positive_int: Any) -> None:
    """Add `worker` to the command line's subparsers."""
    worker = sub.add_parser(
        "worker",
        help="run the work the daemon sends (daemon --executor celery) until SIGTERM",
        description="A Celery worker on the broker of REPLICA_BROKER_URL: it runs the backups, verifications and "
        "prunes the leading daemon sends, each slot once. SIGTERM lets running work finish; a second SIGTERM or "
        "SIGQUIT stops at once and the broker hands its work to another worker.",
    )
    worker.set_defaults(handler=worker_command)
    worker.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="consume this queue (repeatable; default: REPLICA_DEFAULT_QUEUE, 'replica'); jobs name theirs",
    )
    worker.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"runs at a time in this worker (default {DEFAULT_CONCURRENCY})",
    )
    worker.add_argument("--name", help="this worker's name in runs and status (default: worker-PID@HOST)")


def worker_command(context: Context, arguments: argparse.Namespace) -> int:
    """Run a Celery worker until it is stopped; return 0 after a clean stop, 1 when Celery itself failed."""
    from replica.actions.run_due import sweep
    from replica.catalog.actor import act_as
    from replica.distributed.app import describe_broker, make_app
    from replica.distributed.tasks import WorkerState, register_tasks

    logging.getLogger("replica").setLevel(logging.INFO)
    name = arguments.name or f"worker-{os.getpid()}@{socket.gethostname()}"
    queues = arguments.queue or [context.settings.default_queue]
    app = make_app(context.settings)
    act_as(f"worker:{name}")
    # Runs of this host left `running` by a dead process (a worker killed mid-run) end `abandoned` now and what they
    # left in the repositories is reconciled; their tasks come back from the broker and are claimed again
    # (replica.actions.dispatched).
    abandoned, reconciled = sweep(context)
    for run in abandoned:
        logger.warning("run %s (%s of '%s') was left running by a dead process: abandoned", run.id, run.kind, run.job)
    for result in reconciled:
        logger.warning("%s", result.describe())
    register_tasks(app, WorkerState(context, name))
    logger.info("worker %s on %s, queues %s", name, describe_broker(context.settings), ", ".join(queues))
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={arguments.concurrency}",
        f"--queues={','.join(queues)}",
        # Celery names a worker NAME@HOST; without a host it would make it celery@NAME.
        f"--hostname={name if '@' in name else f'{name}@{socket.gethostname()}'}",
        "--loglevel=INFO",
        # Gossip and mingle exchange state between workers at start; replica's workers share theirs through the
        # catalog, and both cost seconds at every start.
        "--without-gossip",
        "--without-mingle",
    ]
    # app.start, not app.worker_main: worker_main drops the exit code Celery ends with (a failed start, a cold stop).
    code = app.start(argv)
    return OK if code in (None, 0) else FAILED
