"""Who does the work of this process: `user@host` for a person, `daemon@host` for the daemon."""

from __future__ import annotations

import getpass
import os
import socket

_actor_override: str | None = None


def act_as(actor: str | None) -> None:
    """Record every later run and event of this process as done by `actor` (the daemon records `daemon@host`)."""
    global _actor_override  # noqa: PLW0603 - one process, one actor: the daemon sets it once at start
    _actor_override = actor


def current_actor() -> str:
    """Return who runs this process's work: `user@host`, or what `act_as` set."""
    if _actor_override is not None:
        return _actor_override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
