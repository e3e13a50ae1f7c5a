"""Retention of a physical job's WAL, part of `replica prune`: once snapshots are forgotten, the archived segments
(and backup history files) older than the start segment of the oldest base backup still retained in a destination
are deleted there, and nothing newer. With no base backup retained, everything is kept: nothing says what a
future restore needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from replica.actions.context import Context
from replica.actions.wal import wal_archive
from replica.actions.wal_chain import retained_base_backups
from replica.config.models import DestinationConfig, JobConfig
from replica.wal.chain import BaseBackupStart, expired_names, oldest_start


@dataclass
class WalRetention:
    """What WAL retention deletes (or, in a dry run, would delete) in one destination, and from where it keeps."""

    keep_from: str | None  # name of the oldest segment kept; None: no base backup retained, everything kept
    expired: list[str] = field(default_factory=list)

    def describe(self, *, dry_run: bool = False) -> str:
        """Return one line: how many WAL files go (or would go) and from which segment on everything stays."""
        if self.keep_from is None:
            return "WAL: no base backup retained, every archived file kept"
        removed = "to remove" if dry_run else "removed"
        return f"WAL: {len(self.expired)} file(s) older than {self.keep_from} {removed}, everything from it kept"


def decide_wal_retention(
    context: Context, job: JobConfig, destination: DestinationConfig, retained: Iterable[BaseBackupStart]
) -> WalRetention:
    """Return the WAL files of a destination older than the start of the oldest of the `retained` base backups.
    Raises StorageError when the archive cannot be listed."""
    oldest = oldest_start(retained)
    if oldest is None:
        return WalRetention(None)
    names = [stored.name for stored in wal_archive(context, job, destination).stored()]
    keep_from = oldest.segment
    return WalRetention(keep_from.name(oldest.segment_bytes), expired_names(names, keep_from, oldest.segment_bytes))


def planned_wal_retention(
    context: Context, job: JobConfig, destination: DestinationConfig, kept_snapshot_ids: Iterable[str]
) -> WalRetention:
    """Return what a prune that keeps `kept_snapshot_ids` would delete of a destination's WAL (its dry run)."""
    kept = set(kept_snapshot_ids)
    starts = [s for s in retained_base_backups(context, job, destination.name) if s.snapshot_id in kept]
    return decide_wal_retention(context, job, destination, starts)


def remove_expired_wal(context: Context, job: JobConfig, destination: DestinationConfig) -> WalRetention:
    """Delete a destination's WAL older than what its retained base backups need (read from the catalog after the
    snapshots were marked pruned) and return what was deleted. Raises StorageError."""
    retention = decide_wal_retention(context, job, destination, retained_base_backups(context, job, destination.name))
    if retention.expired:
        context.progress(f"removing {len(retention.expired)} WAL file(s) from '{destination.name}'")
        wal_archive(context, job, destination).delete(retention.expired)
    return retention
