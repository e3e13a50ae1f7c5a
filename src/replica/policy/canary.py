"""The canary check: did the restore bring back the canary written right before its backup? Pure."""

from __future__ import annotations

from datetime import datetime

from replica.catalog.records import CheckOutcome
from replica.config.durations import format_duration
from replica.stores.base import Canary


def evaluate_canary(expected: Canary, found: Canary | None, now: datetime) -> CheckOutcome:
    """Return the `canary` check.

    Passes when the newest canary in the restored data is the one written right before this snapshot's dump:
    its time is then the real recovery point, and `now - time` the data a restore would lose today. An older
    canary means the dump missed the latest writes; none means the canary table/key/file was not restored.
    """
    if found is None:
        return CheckOutcome(
            "canary",
            False,
            True,
            f"no canary in the restored data (expected run {expected.run_id}'s, written "
            f"{expected.written_at.isoformat()})",
        )
    if found.written_at < expected.written_at or found.run_id != expected.run_id:
        return CheckOutcome(
            "canary",
            False,
            True,
            f"restored canary of run {found.run_id} written {found.written_at.isoformat()} is older than the one "
            f"written before this backup (run {expected.run_id}, {expected.written_at.isoformat()}): the dump "
            "missed the latest writes",
        )
    window = (now - found.written_at).total_seconds()
    return CheckOutcome(
        "canary",
        True,
        True,
        f"canary of run {found.run_id} restored: real recovery point {found.written_at.isoformat()}, "
        f"data-loss window if lost now {format_duration(window)}",
    )
