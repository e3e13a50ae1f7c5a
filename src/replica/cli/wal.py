"""`replica wal-push` and `replica wal-fetch`: the server's archive_command and restore_command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import FAILED, OK
from replica.errors import ReplicaError

if TYPE_CHECKING:
    import argparse

    from replica.actions.context import Context

# PostgreSQL ends recovery when restore_command fails with a code up to 125 (it takes that as "no more WAL"), and
# aborts recovery above it. A file that exists but cannot be delivered now (damaged, endpoint down) must abort:
# ending early would promote a server that silently lacks committed data.
RECOVERY_MUST_STOP = 126


def add_wal_parsers(sub: Any) -> None:
    """Add `wal-push` and `wal-fetch` to the command line's subparsers."""
    push = sub.add_parser(
        "wal-push",
        help="archive one WAL file on every destination (archive_command = 'replica wal-push --job JOB %%p')",
        description="Archive one WAL file on every destination of a physical PostgreSQL job; exit 0 only once it "
        "is durable everywhere.",
    )
    push.set_defaults(handler=wal_push)
    push.add_argument("--job", required=True, help="the physical PostgreSQL job whose server archives")
    push.add_argument("path", type=Path, help="the WAL file (%%p)")
    fetch = sub.add_parser(
        "wal-fetch",
        help="write one archived WAL file (restore_command = 'replica wal-fetch --job JOB %%f %%p')",
        description="Write one archived WAL file; exit 1 when no destination has it, 126 when it cannot be "
        "delivered now (recovery must stop).",
    )
    fetch.set_defaults(handler=wal_fetch)
    fetch.add_argument("--job", required=True, help="the physical PostgreSQL job")
    ask = fetch.add_mutually_exclusive_group()
    ask.add_argument("--destination", help="destination asked first (default: the primary); the others follow")
    ask.add_argument(
        "--only",
        metavar="DESTINATION",
        help="ask this destination alone, its answer final (a restore from it or a verification of it)",
    )
    fetch.add_argument("name", help="the WAL file's name (%%f)")
    fetch.add_argument("path", type=Path, help="where to write it (%%p)")


def wal_push(context: Context, arguments: argparse.Namespace) -> int:
    """Archive a WAL file; errors reach the server's log through stderr (printed by main)."""
    from replica.actions.wal import push_wal_file

    push_wal_file(context, arguments.job, arguments.path)
    return OK


def wal_fetch(context: Context, arguments: argparse.Namespace) -> int:
    """Fetch a WAL file: 0 written, 1 archived nowhere, RECOVERY_MUST_STOP when it could not be delivered."""
    from replica.actions.wal import WalNotArchived, fetch_wal_file

    try:
        only = arguments.only is not None
        destination = arguments.only if only else arguments.destination
        fetch_wal_file(context, arguments.job, arguments.name, arguments.path, destination, only=only)
    except WalNotArchived:
        # Asked for routinely (the next segment past the end, a future timeline's history): no message.
        return FAILED
    except ReplicaError as error:
        print(f"replica: error: {error}", file=sys.stderr)
        return RECOVERY_MUST_STOP
    return OK
