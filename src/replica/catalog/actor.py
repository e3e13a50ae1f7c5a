"""Who does the work: `user@host` for a person, `daemon@host` for the daemon, `token:NAME` for an API caller,
`worker:NAME` for a distributed worker; and, for a worker, the scheduled slot the work was sent for."""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import os
import socket
from collections.abc import Iterator
from datetime import datetime

_actor_override: str | None = None
# The web server runs the actions of several API callers at once, each in a thread of its own: their actor is the
# caller's, set around the work with `acting_as`, not the process's.
_context_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("replica_actor", default=None)
# The fire time a worker's task was sent for: every run the work starts records it (see replica.catalog.work_slots).
_context_slot: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("replica_slot", default=None)


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


@contextlib.contextmanager
def for_slot(slot: datetime) -> Iterator[None]:
    """Record the runs the current thread starts while the block runs as started for the scheduled `slot`."""
    token = _context_slot.set(slot)
    try:
        yield
    finally:
        _context_slot.reset(token)


def current_slot() -> datetime | None:
    """Return the scheduled slot the current thread's work was sent for, or None (work started any other way)."""
    return _context_slot.get()
