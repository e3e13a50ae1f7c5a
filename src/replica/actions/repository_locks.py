"""Stale restic locks of this host: cleared with plain `restic unlock` before work is retried, and recorded.

A restic killed with SIGTERM or SIGKILL (systemd's default KillMode, the OOM killer) leaves its lock in the
repository, and an exclusive one blocks every later backup, a shared one every prune. replica clears such a lock
only when every lock of the repository belongs to a dead process of this host (see `replica.restic.locks`); each
removal is logged and appended to the verification log as an `unlock` event. Locks of other hosts or of live
processes are never removed: the work fails as `repository_locked`, naming the holder and its age.

A prune also holds the run locks of every other job with a destination in one of its repositories, so that no
backup or verify of theirs runs while it repacks (restic's own lock would only make one of them fail).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from replica.actions.context import Context
from replica.actions.locking import hold_job
from replica.catalog.actor import current_actor
from replica.catalog.events import EventDraft
from replica.config.models import DestinationConfig, JobConfig
from replica.processes import process_alive
from replica.restic.lock_messages import Lock
from replica.restic.locks import StaleLockClearing

logger = logging.getLogger(__name__)

UNLOCK_KIND = "unlock"


def stale_lock_clearing(
    context: Context, job: JobConfig, destination: DestinationConfig, *, during: str, run_id: int | None = None
) -> StaleLockClearing:
    """Return how the `during` work (prune, backup...) of `job` in `destination` clears stale locks of this host:
    each lock removed is logged and recorded as an `unlock` event (of run `run_id` when given)."""

    def cleared(locks: Sequence[Lock]) -> None:
        now = datetime.now(UTC)
        for lock in locks:
            detail = f"removed the stale lock of dead pid {lock.pid} with restic unlock ({lock.describe(now)})"
            logger.warning("job '%s' destination '%s': %s", job.name, destination.name, detail)
            context.progress(f"'{destination.name}': {detail}")
            context.catalog.events.append(
                EventDraft(
                    kind=UNLOCK_KIND,
                    outcome="cleared",
                    actor=current_actor(),
                    job=job.name,
                    destination=destination.name,
                    run_id=run_id,
                    figures={
                        "holder_pid": lock.pid,
                        "holder_host": lock.host,
                        "holder_user": lock.user,
                        "exclusive": lock.exclusive,
                        "age_seconds": round(lock.age(now).total_seconds()),
                        "lock_id": lock.lock_id,
                        "during": during,
                    },
                    detail=detail,
                )
            )

    return StaleLockClearing(host=context.host, is_alive=process_alive, on_cleared=cleared)


@contextlib.contextmanager
def holding_repository(context: Context, job: JobConfig, kind: str) -> Iterator[None]:
    """Hold the run locks of `job` and of every other job sharing one of its repositories while the block runs.

    The locks are taken in name order (two prunes of jobs sharing a repository cannot each hold one and wait for
    the other: taking a lock never waits). Raises JobBusy naming the run that holds one of them; those already
    taken are released.
    """
    with contextlib.ExitStack() as held:
        for name in sorted({job.name, *context.configuration.sharing_repositories(job.name)}):
            held.enter_context(hold_job(context, name, kind))
        yield
