"""`restic copy`: one snapshot from a source repository into another (decrypt, re-encrypt)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from replica.errors import ResticError
from replica.execute import Completed, run
from replica.restic.command import Repository, Restic, raise_for_restic
from replica.restic.init import from_repository_environment
from replica.restic.locks import StaleLockClearing, retrying_after_stale_locks
from replica.restic.snapshots import list_snapshots

# restic 0.14's copy prints no JSON, only these lines (cmd_copy.go); the short ids are 8 hex digits.
_SAVED = re.compile(r"^snapshot ([0-9a-f]{8}) saved$", re.MULTILINE)
_ALREADY_COPIED = re.compile(
    r"^skipping source snapshot ([0-9a-f]{8}), was already copied to snapshot ([0-9a-f]{8})$", re.MULTILINE
)


@dataclass(frozen=True)
class CopiedSnapshot:
    """The copy of a snapshot in the destination repository."""

    short_id: str


def copied_snapshot_id(stdout: str, snapshot_id: str) -> str | None:
    """Return the short id of the copy of `snapshot_id` that `restic copy` reported, or None when it said none.

    A copy of one snapshot prints `snapshot NEW saved`, or, when the destination holds it already, `skipping
    source snapshot OLD, was already copied to snapshot NEW`.
    """
    for match in _ALREADY_COPIED.finditer(stdout):
        if snapshot_id.startswith(match.group(1)) or match.group(1).startswith(snapshot_id):
            return match.group(2)
    saved = _SAVED.findall(stdout)
    return saved[0] if len(saved) == 1 else None


def copy_snapshot(
    restic: Restic,
    source: Repository,
    destination: Repository,
    snapshot_id: str,
    clearing: StaleLockClearing | None = None,
) -> CopiedSnapshot:
    """Copy `snapshot_id` from `source` to `destination` and return the copy's short id.

    restic 0.14's copy prints no JSON. The id comes from the one line copy prints about the new snapshot: every
    restic process spends ~0.5 s deriving the key before doing anything, so a `snapshots` listing to find the copy
    by its `original` field (which holds the source's full id) is only the fallback when that line is missing
    (another restic version). Copying twice is harmless (restic skips it). With `clearing`, stale locks of this host
    in the destination that keep the copy out are removed and the copy runs once more (see `replica.restic.locks`).
    Raises a classified ResticError.
    """
    command = restic.command(
        destination,
        ["copy", snapshot_id],
        long_running=True,
        extra_environment=from_repository_environment(source),
    )

    def copy() -> Completed:
        completed = run(command)
        raise_for_restic(completed, destination.name)
        return completed

    completed = retrying_after_stale_locks(restic, destination, clearing, copy)
    reported = copied_snapshot_id(completed.stdout, snapshot_id)
    if reported is not None:
        return CopiedSnapshot(reported)
    for snapshot in list_snapshots(restic, destination):
        if snapshot.original and snapshot.original.startswith(snapshot_id):
            return CopiedSnapshot(snapshot.short_id)
    raise ResticError(destination.name, f"copy of snapshot {snapshot_id} finished but is not listed")
