"""`replica serve` (the web console and HTTP API) and `replica token ...` (its tokens)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from replica.cli.exit_codes import OK
from replica.cli.render import table

if TYPE_CHECKING:
    from replica.actions.context import Context

ROLES = ("auditor", "operator")  # replica.catalog.tokens.ROLES, without importing the catalog to build the parser


def add_web_parsers(sub: Any) -> None:
    """Add `serve` and `token create|list|revoke` to the command line's subparsers."""
    serve = sub.add_parser("serve", help="serve the web console and HTTP API until SIGTERM")
    serve.set_defaults(handler=serve_command)
    serve.add_argument("--host", help="address to listen on (default: setting web_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: setting web_port, 8470)")
    token = sub.add_parser("token", help="API tokens of the web console: create, list, revoke")
    actions = token.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token and print it (shown this once only)")
    create.set_defaults(handler=token_create)
    create.add_argument("--name", required=True, help="who or what holds it; recorded as the actor of its actions")
    create.add_argument("--role", required=True, choices=ROLES, help="auditor: read only; operator: also acts")
    listing = actions.add_parser("list", help="list tokens (names and roles, never the tokens)")
    listing.set_defaults(handler=token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.set_defaults(handler=token_revoke)
    revoke.add_argument("name")


def serve_command(context: Context, arguments: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C; running actions are interrupted and recorded so."""
    import uvicorn

    from replica.web.app import create_server_app

    settings = context.settings
    host = arguments.host or settings.web_host
    port = arguments.port if arguments.port is not None else settings.web_port
    context.catalog  # noqa: B018 - migrate (and fail on a bad catalog URL) before listening
    print(f"replica: serving the web console and API on http://{host}:{port}/", file=sys.stderr, flush=True)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again to the previous handler (here a
    # KeyboardInterrupt): a requested stop, not an error.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(create_server_app(settings), host=host, port=port, log_level="warning", lifespan="on")
    print("replica: web server stopped", file=sys.stderr, flush=True)
    return OK


def token_create(context: Context, arguments: argparse.Namespace) -> int:
    """Create a token; print it alone on stdout (for scripts), the advice on stderr."""
    token = context.catalog.tokens.create(arguments.name, arguments.role)
    print(token)
    print(
        f"token '{arguments.name}' ({arguments.role}) created; it is shown this once only, store it now",
        file=sys.stderr,
    )
    return OK


def token_list(context: Context, arguments: argparse.Namespace) -> int:
    """Print every token's name, role and dates."""
    rows = [
        [
            row.name,
            row.role,
            row.created_at.isoformat(timespec="seconds"),
            row.created_by,
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-",
        ]
        for row in context.catalog.tokens.all()
    ]
    print(table(["NAME", "ROLE", "CREATED", "BY", "REVOKED"], rows) if rows else "no tokens")
    return OK


def token_revoke(context: Context, arguments: argparse.Namespace) -> int:
    """Revoke a token by name."""
    context.catalog.tokens.revoke(arguments.name)
    print(f"token '{arguments.name}' revoked")
    return OK
