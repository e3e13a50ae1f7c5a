"""`restic snapshots` and `restic forget` of single snapshots."""

from __future__ import annotations

from collections.abc import Sequence

from replica.errors import ResticError
from replica.restic.command import Repository, Restic
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


def forget_snapshot(restic: Restic, repository: Repository, snapshot_id: str) -> None:
    """Remove one snapshot's record (its data goes at the next prune). Raises a ResticError."""
    restic.run(repository, ["forget", snapshot_id])
