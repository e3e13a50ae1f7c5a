"""Who does the work: `user@host` for a person, `daemon@host` for the daemon, `token:NAME` for an API caller."""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import os
import socket
from collections.abc import Iterator

_actor_override: str | None = None
# The web server runs the actions of several API callers at once, each in a thread of its own: their actor is the
# caller's, set around the work with `acting_as`, not the process's.
_context_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("replica_actor", default=None)


def act_as(actor: str | None) -> None:
    """Record every later run and event of this process as done by `actor` (the daemon records `daemon@host`)."""
    global _actor_override  # noqa: PLW0603 - one process, one actor: the daemon sets it once at start
    _actor_override = actor


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record the runs and events of the current thread (or task) as done by `actor` while the block runs."""
    token = _context_actor.set(actor)
    try:
        yield
    finally:
        _context_actor.reset(token)


def current_actor() -> str:
    """Return who runs this work: what `acting_as` set, else what `act_as` set, else `user@host`."""
    actor = _context_actor.get()
    if actor is not None:
        return actor
    if _actor_override is not None:
        return _actor_override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
