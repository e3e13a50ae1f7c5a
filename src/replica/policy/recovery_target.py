"""Where a verification of a physical PostgreSQL job recovers to: a random moment between the base backup's end
and a canary written at the start of the verification, clear of every canary's write. Pure.

A random moment, not always the newest: every moment the archive covers must be restorable, and a fixed one would
test the same few segments each time. Clear of canaries by `CLEARANCE_SECONDS`: a canary's time is taken just before
its INSERT commits, so a target a few milliseconds after it could still precede its commit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from replica.stores.base import Canary

CLEARANCE_SECONDS = 2.0
DRAWS = 32


def choose_recovery_target(
    start: datetime, end: datetime, canaries: Sequence[Canary], draw: random.Random
) -> tuple[datetime, Canary | None] | None:
    """Return a moment in [start, end) at least CLEARANCE_SECONDS away from every canary, and the newest canary
    written before it (the one a recovery to that moment must bring back; None when none was); None when the
    window leaves no such moment."""
    clearance = timedelta(seconds=CLEARANCE_SECONDS)
    span = (end - start).total_seconds()
    if span <= 0:
        return None
    for _ in range(DRAWS):
        moment = start + timedelta(seconds=draw.uniform(0, span))
        if all(abs(moment - canary.written_at) >= clearance for canary in canaries):
            before = [canary for canary in canaries if canary.written_at < moment]
            return moment, max(before, key=lambda canary: canary.written_at, default=None)
    return None
