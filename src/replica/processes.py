"""Whether a process is alive on this host: how a `running` run whose process died is told from a live one."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Return True when a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
