"""The facts `replica status` reads from the catalog, as plain types: a job's newest records (computed by
`replica.catalog.latest`, cached by `replica.catalog.summaries`) and a destination's recorded WAL lag.

No SQLAlchemy here: `status` reads cached facts through a plain DB-API reader (`replica.catalog.summary_reader`)
and never imports it when no job's facts must be recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from replica.policy.forecast import RtoFit

SUCCEEDED, FAILED, RUNNING = "succeeded", "failed", "running"


# Named tuples rather than frozen dataclasses: status builds tens of thousands from the cached summaries
# (replica.catalog.summaries), and a tuple is built about three times faster.
class RunFacts(NamedTuple):
    """The columns of a run that status reads (`details` only where a fact needs it, else empty)."""

    id: int
    destination: str | None
    status: str
    snapshot_id: str | None
    finished_at: datetime | None
    error: str | None
    details: Mapping[str, Any] = MappingProxyType({})  # read-only: the default is shared
    failure: str | None = None  # the failure state of a run that did not succeed (replica.errors.FAILURE_STATES)
    actor: str | None = None  # who ran it: `worker:NAME`, `daemon@host`, `user@host` (replica.catalog.actor)


class VerifiedPointFacts(NamedTuple):
    """The newest verified recovery point of one destination: the snapshot and its latest verification."""

    destination: str
    snapshot_id: str
    taken_at: datetime
    row_id: int
    verification: RunFacts


@dataclass
class LatestRecords:
    """What the catalog says about one job's newest work (see the module docstring of replica.catalog.latest)."""

    last_backup: RunFacts | None = None
    last_backup_copy_failed: bool = False
    # Per destination (`""` for verifications recorded without one), the newest finished verification of a snapshot.
    latest_verifications: dict[str, RunFacts] = field(default_factory=dict)
    last_rto_seconds: float | None = None
    # Per destination, including destinations no longer in the job's file.
    newest_points: dict[str, VerifiedPointFacts] = field(default_factory=dict)
    # (host, pid) of every run of the job still marked `running`.
    running: list[tuple[str, int]] = field(default_factory=list)
    # Per destination, the newest succeeded backup, copy or prune that recorded the bucket's Object Lock state
    # (`details["object_lock"]`).
    object_locks: dict[str, RunFacts] = field(default_factory=dict)
    # Per destination with enough measured restores, the fit of RTO against restored size and of size over time.
    rto_fits: dict[str, RtoFit] = field(default_factory=dict)


@dataclass(frozen=True)
class LagRecord:
    """One destination's lag as measured at `measured_at` (seconds None: nothing archived there and no base backup
    to need it; `lower_bound`: the lag is at least that, no recorded position being old enough to bound it)."""

    job: str
    destination: str
    measured_at: datetime
    lag_seconds: float | None
    newest_segment: str | None
    newest_stored_at: datetime | None
    insert_lsn: str
    lower_bound: bool = False

    def seconds_at(self, now: datetime) -> float | None:
        """Return the lag as an upper bound at `now`: the measured lag plus the time since it was measured (data
        written since may not be archived; nothing has shown it is). None when nothing was archived."""
        if self.lag_seconds is None:
            return None
        return self.lag_seconds + max((now - self.measured_at).total_seconds(), 0.0)
