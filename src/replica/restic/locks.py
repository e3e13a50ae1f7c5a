"""restic's repository locks: who holds them, which are stale, and clearing only those that are.

What restic 0.14 does (measured): every command but `check --no-lock`, `snapshots --no-lock` and `init` writes a
lock file under `locks/` (backup, copy and restore a shared one; forget, prune and check an exclusive one) and
removes it when it ends or on SIGINT, but not on SIGTERM or SIGKILL. A lock blocks: an exclusive lock any other
lock, a shared lock only exclusive ones. Nothing in 0.14 removes a lock by itself; plain `restic unlock` removes
those restic calls stale: of this host with a dead pid, or of ANY host when older than 30 minutes (live holders
rewrite theirs every 5 minutes, but a suspended or partitioned one does not). `restic unlock --remove-all` removes
every lock, live ones too.

So replica runs plain `restic unlock` only when every lock in the repository is of this host with a dead pid, and
never `--remove-all`: a lock of another host (whatever its age) or of a live process is reported with its holder
and age, never removed. Locks are found cheaply: the failed command's stderr names the lock it ran into (parsed
here, no extra restic call); only when that lock is a stale one of this host are the others listed (`restic list
locks`, and `restic cat lock ID` for each not already known: every restic process costs ~0.5 s of key derivation).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from replica.errors import ReplicaError, RepositoryLocked, ResticError
from replica.execute import run
from replica.restic.command import Repository, Restic, raise_for_restic
from replica.restic.lock_messages import Lock, parse_lock, parse_lock_ids
from replica.restic.messages import UnexpectedOutput

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

# restic 0.14 retries a load of a lock file that vanished meanwhile (its holder ended, or refreshed it under a new
# id) for ~45 s; reading one lock is otherwise a fraction of a second.
LOCK_READ_TIMEOUT_SECONDS = 20.0


def list_lock_ids(restic: Restic, repository: Repository) -> list[str]:
    """Return the ids of the repository's lock files (one restic call). Raises a classified ResticError."""
    return parse_lock_ids(restic.run(repository, ["list", "locks", "--no-lock"]).stdout)


def read_lock(restic: Restic, repository: Repository, lock_id: str) -> Lock:
    """Return one lock file's content (one restic call, bounded: a vanished lock makes 0.14 retry for ~45 s).

    Raises a classified ResticError (ResticTimeout when the file vanished or the endpoint is slow).
    """
    command = restic.command(repository, ["cat", "lock", lock_id, "--no-lock"])
    command = dataclasses.replace(command, timeout_seconds=min(command.timeout_seconds, LOCK_READ_TIMEOUT_SECONDS))
    completed = run(command)
    raise_for_restic(completed, repository.name)
    try:
        return parse_lock(completed.stdout, lock_id)
    except UnexpectedOutput as error:
        raise ResticError(repository.name, str(error)) from None


def list_locks(restic: Restic, repository: Repository, known: Sequence[Lock] = ()) -> list[Lock]:
    """Return every lock of the repository: listed, then read (a lock in `known` is not read again).

    Raises a classified ResticError.
    """
    locks = []
    for lock_id in list_lock_ids(restic, repository):
        already = next((lock for lock in known if lock.matches(lock_id)), None)
        locks.append(
            dataclasses.replace(already, lock_id=lock_id) if already else read_lock(restic, repository, lock_id)
        )
    return locks


def unlock(restic: Restic, repository: Repository) -> None:
    """Run plain `restic unlock` (removes only what restic calls stale; never `--remove-all`).

    Raises a classified ResticError.
    """
    restic.run(repository, ["unlock"])


@dataclass(frozen=True)
class StaleLockClearing:
    """What clearing stale locks needs: this host's name, how to tell a live pid, and whom to tell what was
    removed (the caller logs it and appends it to the verification log)."""

    host: str
    is_alive: Callable[[int], bool]
    on_cleared: Callable[[Sequence[Lock]], None]


def clear_stale_locks(
    restic: Restic, repository: Repository, clearing: StaleLockClearing, reported: Lock | None = None
) -> list[Lock]:
    """Remove the repository's locks with plain `restic unlock` when every one is a stale lock of this host; return
    them (empty when there was none left to remove).

    `reported` is the lock a failed command named: when it is another host's or a live process's, it is raised at
    once, without listing. Raises RepositoryLocked naming the holder of the first lock that is not stale here
    (nothing is removed then), a classified ResticError when the locks cannot be listed or removed.
    """
    if reported is not None and not reported.stale_here(clearing.host, clearing.is_alive):
        raise RepositoryLocked(repository.name, "", holder=reported)
    locks = list_locks(restic, repository, [reported] if reported is not None else [])
    for lock in locks:
        if not lock.stale_here(clearing.host, clearing.is_alive):
            raise RepositoryLocked(repository.name, "", holder=lock)
    if not locks:
        return []
    unlock(restic, repository)
    clearing.on_cleared(locks)
    return locks


def retrying_after_stale_locks(
    restic: Restic,
    repository: Repository,
    clearing: StaleLockClearing | None,
    work: Callable[[], Result],
) -> Result:
    """Run `work` (a restic command that can simply be run again); when it fails as locked by stale locks of this
    host only, remove them (`clear_stale_locks`) and run it once more.

    restic's own attempt to lock is the check: it costs nothing when the repository is free, and its error names
    the lock in the way. Raises RepositoryLocked naming the holder when another host or a live process holds a lock
    (nothing removed), and whatever `work` raises.
    """
    try:
        return work()
    except RepositoryLocked as error:
        if clearing is None:
            raise
        clear_after_locked(restic, repository, clearing, error)
    return work()


def clear_after_locked(
    restic: Restic, repository: Repository, clearing: StaleLockClearing, error: RepositoryLocked
) -> list[Lock]:
    """After `error`, remove the repository's locks if all are stale locks of this host; return them (the work
    may then be run again).

    Raises RepositoryLocked naming the holder of a lock that is not stale here, or `error` itself when the locks
    cannot be listed or removed (that failure is logged).
    """
    try:
        return clear_stale_locks(restic, repository, clearing, error.holder)
    except RepositoryLocked:
        raise
    except ReplicaError as listing_error:
        logger.warning("destination '%s': could not inspect its locks: %s", repository.name, listing_error)
        raise error from None
