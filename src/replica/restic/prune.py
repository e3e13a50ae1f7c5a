"""`restic forget --prune` of the snapshots replica decided to remove: restic executes, it never decides."""

from __future__ import annotations

import re
from collections.abc import Sequence

from replica.restic.command import Repository, Restic
from replica.restic.locks import StaleLockClearing, retrying_after_stale_locks
from replica.restic.snapshots import list_snapshots

# A full or abbreviated snapshot id. Anything else on forget's command line would be read as an option or a
# policy flag (`--keep-last`), and restic would then decide what to remove.
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")


def prune_arguments(snapshot_ids: Sequence[str]) -> list[str]:
    """Return restic's arguments that forget exactly `snapshot_ids` and prune the data only they used.

    Raises ValueError for an empty list (restic would print its policy help and remove nothing) or for a value that
    is not a snapshot id.
    """
    if not snapshot_ids:
        raise ValueError("no snapshot to forget")
    malformed = [snapshot_id for snapshot_id in snapshot_ids if not SNAPSHOT_ID.match(snapshot_id)]
    if malformed:
        raise ValueError(f"not snapshot ids: {', '.join(repr(value) for value in malformed)}")
    return ["forget", "--prune", *snapshot_ids]


def forget_and_prune(
    restic: Restic,
    repository: Repository,
    snapshot_ids: Sequence[str],
    clearing: StaleLockClearing | None = None,
) -> list[str]:
    """Remove exactly these snapshots and the data only they used; return those still listed afterwards.

    restic 0.14 exits 0 after skipping an id it could not match or load ("Ignoring ..."), so the repository is
    listed again to learn what really went: an id already gone counts as removed, one still listed is returned.
    With `clearing`, stale locks of dead processes of this host that keep the exclusive lock out are removed and
    the forget runs once more (see `replica.restic.locks`).
    Raises a ResticError (RepositoryLocked naming the holder when another host or a live process holds a lock:
    prune needs an exclusive lock) and ValueError for arguments that are not snapshot ids.
    """
    arguments = prune_arguments(snapshot_ids)
    # Long-running: the prune rewrites packs and can take as long as a backup on a large repository.
    retrying_after_stale_locks(
        restic, repository, clearing, lambda: restic.run(repository, arguments, long_running=True)
    )
    listed = list_snapshots(restic, repository)
    return [
        snapshot_id for snapshot_id in snapshot_ids if any(snapshot.id.startswith(snapshot_id) for snapshot in listed)
    ]
