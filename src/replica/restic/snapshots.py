"""`restic snapshots` and `restic forget` of single snapshots."""

from __future__ import annotations

from collections.abc import Sequence

from replica.errors import ResticError
from replica.restic.command import Repository, Restic
from replica.restic.locks import StaleLockClearing, retrying_after_stale_locks
from replica.restic.messages import ResticSnapshot, UnexpectedOutput, parse_snapshots


def list_snapshots(restic: Restic, repository: Repository, *, tags: Sequence[str] = ()) -> list[ResticSnapshot]:
    """Return the repository's snapshots (optionally only those with all `tags`). Raises a ResticError."""
    arguments = ["snapshots", "--no-lock"]
    if tags:
        arguments += ["--tag", ",".join(tags)]
    completed = restic.run(repository, arguments)
    try:
        return parse_snapshots(completed.stdout)
    except UnexpectedOutput as error:
        raise ResticError(repository.name, str(error)) from None


def forget_snapshot(
    restic: Restic, repository: Repository, snapshot_id: str, clearing: StaleLockClearing | None = None
) -> None:
    """Remove one snapshot's record (its data goes at the next prune); forget takes the exclusive lock, so with
    `clearing` stale locks of this host are removed first when they are in the way (see `replica.restic.locks`).

    Raises a ResticError (RepositoryLocked naming the holder of a lock that is not stale here).
    """
    retrying_after_stale_locks(restic, repository, clearing, lambda: restic.run(repository, ["forget", snapshot_id]))
