"""`restic restore` of a tree and `restic dump` of a single stored file.

With `shared_lock` both take restic's shared lock (no `--no-lock`): a prune, which needs the exclusive lock, then
cannot remove or repack what a restore is reading (a restore by hand is not serialised with the job's scheduled
work), and a restore started during a prune fails at once as "repository is locked" instead of halfway.
"""

from __future__ import annotations

from pathlib import Path

from replica.execute import Command, run
from replica.restic.command import Repository, Restic, raise_for_restic


def _lock_arguments(shared_lock: bool) -> list[str]:
    return [] if shared_lock else ["--no-lock"]


def restore_tree(restic: Restic, repository: Repository, snapshot_id: str, target: Path, *, shared_lock: bool) -> None:
    """Restore a whole snapshot into `target`, reading every file back (`--verify`).

    Raises a classified ResticError, TargetFull when `target` ran out of space; note that restic 0.14 may leave
    full-size wrong files behind on failure, so the caller must discard the target.
    """
    raise_for_restic(
        run(
            restic.command(
                repository,
                ["restore", *_lock_arguments(shared_lock), snapshot_id, "--target", str(target), "--verify"],
                long_running=True,
            )
        ),
        repository.name,
        target=str(target),
    )


def dump_command(
    restic: Restic, repository: Repository, snapshot_id: str, stored_name: str, *, shared_lock: bool
) -> Command:
    """Return the Command writing one stored file of a snapshot to stdout (for a pipe or a file)."""
    return restic.command(
        repository, ["dump", *_lock_arguments(shared_lock), snapshot_id, stored_name], long_running=True
    )


def dump_to_file(
    restic: Restic, repository: Repository, snapshot_id: str, stored_name: str, output: Path, *, shared_lock: bool
) -> None:
    """Write one stored file of a snapshot to `output`. Raises a classified ResticError, TargetFull when the file
    system of `output` is full (output is then invalid either way)."""
    command = dump_command(restic, repository, snapshot_id, stored_name, shared_lock=shared_lock)
    raise_for_restic(run(command, stdout_path=output), repository.name, target=str(output))
