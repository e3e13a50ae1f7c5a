"""`restic copy`: one snapshot from a source repository into another (decrypt, re-encrypt)."""

from __future__ import annotations

from replica.errors import ResticError
from replica.execute import run
from replica.restic.command import Repository, Restic, raise_for_restic
from replica.restic.init import from_repository_environment
from replica.restic.messages import ResticSnapshot
from replica.restic.snapshots import list_snapshots


def copy_snapshot(restic: Restic, source: Repository, destination: Repository, snapshot_id: str) -> ResticSnapshot:
    """Copy `snapshot_id` from `source` to `destination` and return the copy as listed in the destination.

    restic 0.14's copy prints no JSON, so the copy is found by its `original` field, which holds the source's
    full id. Copying twice is harmless (restic skips it). Raises a classified ResticError.
    """
    command = restic.command(
        destination,
        ["copy", snapshot_id],
        long_running=True,
        extra_environment=from_repository_environment(source),
    )
    raise_for_restic(run(command), destination.name)
    for snapshot in list_snapshots(restic, destination):
        if snapshot.original and snapshot.original.startswith(snapshot_id):
            return snapshot
    raise ResticError(destination.name, f"copy of snapshot {snapshot_id} finished but is not listed")
