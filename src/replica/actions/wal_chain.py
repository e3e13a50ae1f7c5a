"""`replica wal-verify JOB`: is the WAL of a physical job complete, in every destination, from its oldest retained
base backup to the newest archived segment? A gap is data loss for every point in time after it (a restore stops
replaying at the gap), so it fails the run and writes a data-loss report naming the LSN range and the destinations
that still hold it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replica.actions.context import Context
from replica.actions.locking import holding_job
from replica.actions.notifications import notifying
from replica.actions.report import write_data_loss_report
from replica.actions.runs import recorded_run
from replica.actions.wal import physical_job, wal_archives
from replica.catalog.latest import WAL_VERIFY_KIND
from replica.catalog.records import CheckOutcome
from replica.config.models import JobConfig
from replica.errors import CatalogError, RepositoryCorrupt, WalDamaged
from replica.wal.archive import WalArchive
from replica.wal.chain import (
    GAPS,
    BaseBackupStart,
    ChainGap,
    ChainVerdict,
    TimelineHistory,
    base_backup_start,
    judge_chain,
    newest_history_name,
    oldest_start,
    parse_timeline_history,
)
from replica.wal.segments import Segment, format_lsn

CHECK_PREFIX = "wal-chain"


@dataclass
class WalChainCheck:
    """The WAL chain of every destination of a job, in the job's order, with how long the listings took."""

    job: str
    verdicts: list[ChainVerdict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Return True when no destination's chain has a gap."""
        return all(verdict.state != GAPS for verdict in self.verdicts)

    def checks(self) -> list[CheckOutcome]:
        """Return one critical check per destination, named `wal-chain:DESTINATION`."""
        share = self.seconds / max(len(self.verdicts), 1)
        return [
            CheckOutcome(f"{CHECK_PREFIX}:{v.destination}", v.state != GAPS, True, v.describe(), share)
            for v in self.verdicts
        ]


def retained_base_backups(context: Context, job: JobConfig, destination: str) -> list[BaseBackupStart]:
    """Return where the log of each base backup retained in a destination begins (catalog only; snapshots without
    a base backup's fingerprint, such as logical dumps from before a switch to physical mode, are left out).

    Raises CatalogError for a fingerprint whose start LSN cannot be read."""
    starts = []
    for row in context.catalog.snapshots(job.name, destination):
        try:
            start = base_backup_start(row.snapshot_id, row.fingerprint)
        except ValueError as error:
            raise CatalogError(f"catalog: job '{job.name}', destination '{destination}': {error}") from None
        if start is not None:
            starts.append(start)
    return starts


def history_of_timeline(archive: WalArchive, timeline: int) -> TimelineHistory:
    """Return the history of `timeline` as one archive holds it (timeline 1 has none). Without its history file the
    history knows no switch, so only that timeline's own segments count as on its path: a lag judged by it can only
    read larger. Raises WalDamaged when the file does not open or read, StorageError when it cannot be fetched."""
    history = _read_history(archive, f"{timeline:08X}.history") if timeline > 1 else None
    return history or TimelineHistory(timeline)


def on_path(history: TimelineHistory, segment_bytes: int) -> Callable[[Segment], bool]:
    """Return whether a segment is the copy of its number that a restore following `history` reads."""
    return lambda segment: segment.timeline == history.timeline_of(segment.number, segment_bytes)


def timeline_history(archive: WalArchive, names: list[str]) -> TimelineHistory:
    """Return the newest timeline history archived among `names` (fetched and opened: a few bytes), or timeline 1
    with no switch when none is archived (a cluster never promoted). Raises WalDamaged when it does not open or
    read, StorageError when it cannot be fetched."""
    name = newest_history_name(names)
    history = _read_history(archive, name) if name is not None else None
    return history or TimelineHistory(1)


def _read_history(archive: WalArchive, name: str) -> TimelineHistory | None:
    """Return the timeline history file `name` of an archive, or None when it has none. Raises WalDamaged when it
    does not open or read, StorageError when it cannot be fetched."""
    content = archive.fetch(name)
    if content is None:
        return None
    try:
        return parse_timeline_history(name, content.decode())
    except (UnicodeDecodeError, ValueError) as error:
        raise WalDamaged(f"{archive.describe()}: {name} cannot be read: {error}") from None


def check_wal_chain(context: Context, job: JobConfig) -> WalChainCheck:
    """Return the chain of every destination of a physical job, from the oldest base backup retained there to its
    newest archived segment, each gap naming the other destinations that still hold its segments.

    Raises UsageError for a job that ships no WAL, StorageError when an archive cannot be listed.
    """
    physical_job(context, job.name)
    started = time.monotonic()
    retained = {d.name: retained_base_backups(context, job, d.name) for d in job.destinations}
    pairs = list(zip(job.destinations, wal_archives(context, job), strict=True))
    names = {destination.name: [stored.name for stored in archive.stored()] for destination, archive in pairs}
    # Every destination is judged by the newest history any of them holds: a copy that missed a timeline switch
    # (its history file and the new timeline's segments) must show the gap, not look complete on the old timeline.
    histories = [timeline_history(archive, names[destination.name]) for destination, archive in pairs]
    history = max(histories, key=lambda known: known.timeline)
    check = WalChainCheck(job.name)
    for destination, _ in pairs:
        here = retained[destination.name]
        check.verdicts.append(judge_chain(destination.name, oldest_start(here), names, history))
    check.seconds = time.monotonic() - started
    return check


@dataclass
class WalVerifyOutcome:
    """A `wal-verify` run: the chain check, the run, and the data-loss report written for a gap."""

    check: WalChainCheck
    run_id: int
    report_id: int | None = None
    report_path: Path | None = None


@notifying
@holding_job(WAL_VERIFY_KIND)
def run_wal_verify(context: Context, job_name: str) -> WalVerifyOutcome:
    """Check the WAL chain of every destination of a job under a recorded run; write a data-loss report when any
    destination has a gap. Return the outcome.

    The job's lock keeps its prune (which deletes old WAL) from changing the archive between the catalog read and
    the listing. Raises UsageError for a job that ships no WAL, StorageError when an archive cannot be listed (the
    run is recorded as failed, no report: nothing was found missing).
    """
    job, policy = context.job(job_name)
    physical_job(context, job.name)
    with recorded_run(context.catalog, job.name, WAL_VERIFY_KIND, phase="list") as run:
        context.progress(f"listing the WAL archive of {len(job.destinations)} destination(s)")
        check = check_wal_chain(context, job)
        outcome = WalVerifyOutcome(check, run.run_id)
        checks = check.checks()
        context.catalog.add_checks(run.run_id, checks)
        gaps = [gap_document(v.destination, gap) for v in check.verdicts for gap in v.gaps]
        run.details.update(
            destinations=len(check.verdicts),
            gaps=len(gaps),
            segments=sum(v.segments for v in check.verdicts),
        )
        if check.passed:
            return outcome
        run.fail(f"WAL gaps: {'; '.join(c.detail for c in checks if not c.passed)}", RepositoryCorrupt.state)
    gapped = next(v for v in check.verdicts if v.state == GAPS)
    assert gapped.base_backup is not None  # a chain with gaps starts at a base backup
    outcome.report_id, outcome.report_path = write_data_loss_report(
        context,
        job,
        policy,
        gapped.destination,
        gapped.base_backup.snapshot_id,
        outcome.run_id,
        checks,
        failure=RepositoryCorrupt.state,
        wal_gaps=gaps,
    )
    context.progress(f"data-loss report written: {outcome.report_path}")
    return outcome


def gap_document(destination: str, gap: ChainGap) -> dict[str, Any]:
    """Return a ChainGap of `destination` as the report and `--json` list it."""
    return {
        "destination": destination,
        "start_lsn": format_lsn(gap.gap.start_lsn),
        "end_lsn": format_lsn(gap.gap.end_lsn),
        "segments": gap.gap.last - gap.gap.first + 1,
        "description": gap.gap.describe(),
        "held_by": [
            {"destination": copy.destination, "whole": copy.whole, "ranges": [run.describe() for run in copy.held]}
            for copy in gap.copies
        ],
        "recoverable": gap.recoverable,
    }


def chain_documents(verdicts: Sequence[ChainVerdict]) -> list[dict[str, Any]]:
    """Return each destination's chain as `--json` prints it."""
    return [
        {
            "destination": v.destination,
            "state": v.state,
            "base_backup": v.base_backup.snapshot_id if v.base_backup else None,
            "segments": v.segments,
            "summary": v.describe(),
            "gaps": [gap_document(v.destination, gap) for gap in v.gaps],
        }
        for v in verdicts
    ]
