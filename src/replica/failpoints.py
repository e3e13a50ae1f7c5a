"""Failpoints: named places where replica can be made to die as `kill -9` would, to test crash recovery.

`failpoint("backup-after-snapshot")` sends SIGKILL to the own process when the environment variable
`REPLICA_FAILPOINTS` names it (a comma-separated list); otherwise it does nothing. The variable is read once, at
import: an unarmed failpoint costs one lookup in an empty frozenset. SIGKILL, not an exception: nothing unwinds, no
`finally` runs, no run is finished, the children (restic, a dump) are not stopped: exactly what a crash, the OOM
killer or a power cut leaves behind, which is what startup reconciliation (`replica.actions.reconcile`) must mend.

Production code carries them, as FoundationDB's and TiKV's failpoints do, because a crash can only be tested at a
precise point from inside the process: a test that kills replica from outside hits a random instant and proves
little. Only the environment variable arms them; nothing in replica's configuration can.

The failpoints (each sits where a crash leaves the repository and the catalog disagreeing, or could):

- `backup-before-upload`: the backup run is recorded and the source prepared; restic has not started.
- `backup-after-snapshot`: restic saved the snapshot; the dump's exit status and fingerprint are not yet checked
  (a snapshot of a dump that may not have completed, unknown to the catalog).
- `backup-before-record`: the dump is checked and the fingerprint sidecar written; the catalog has not recorded
  the snapshot.
- `copy-after-restic`: `restic copy` saved the copy in a secondary destination; the catalog has not recorded it.
- `prune-after-forget`: `restic forget --prune` removed snapshots; the catalog still lists them as present.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "REPLICA_FAILPOINTS"

FAILPOINTS = {
    "backup-before-upload": "backup run recorded, restic not started",
    "backup-after-snapshot": "restic saved the snapshot, the dump not yet checked, the catalog not told",
    "backup-before-record": "dump checked and sidecar written, the catalog not told",
    "copy-after-restic": "restic copy saved the copy, the catalog not told",
    "prune-after-forget": "restic forgot and pruned snapshots, the catalog not told",
}

_ARMED = frozenset(name.strip() for name in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if name.strip())


def failpoint(name: str) -> None:
    """Die at once with SIGKILL when `name` is armed in REPLICA_FAILPOINTS; return otherwise."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)


def armed() -> frozenset[str]:
    """Return the failpoints armed in this process (for a warning when any is: a production process has none)."""
    return _ARMED
